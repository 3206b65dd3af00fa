"""Monitoring API (``/api/v1/monitoring``) and the ``/monitoring`` dashboard.

Routes are mounted with ``manage_models`` (radai.app): monitoring is the concern of the
people who put models live and take them off. Metrics and alerts are aggregates and
name no patient; samples list Study Instance UIDs and record them in the audit log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from radai.auth.deps import Audit, CurrentUser
from radai.auth.roles import Capability
from radai.monitoring.monitor import Monitor
from radai.monitoring.plots import version_figure
from radai.monitoring.samples import SampleError, SampleNotFound, create_sample, list_samples, sample_report
from radai.monitoring.schemas import (
    AlertOut,
    ModelMonitoringOut,
    RoundOut,
    SampleCreate,
    SampleOut,
    VersionOut,
)
from radai.monitoring.service import (
    ModelNotMonitored,
    evaluate_model,
    evaluate_version,
    monitored_versions,
    open_alerts,
)
from radai.web.deps import RadaiDep
from radai.web.pages import Banner, NavItem, add_banner, add_nav, render

api = APIRouter(prefix="/api/v1/monitoring", tags=["monitoring"])
pages = APIRouter(include_in_schema=False)

add_nav(NavItem("Monitoring", "/monitoring", Capability.MANAGE_MODELS))


def _level(radai: RadaiDep) -> float:
    return float(radai.settings.quality.confidence_level)


@api.get("/models/{model_id}", response_model=ModelMonitoringOut)
def get_model_monitoring(model_id: str, radai: RadaiDep,
                         version: Annotated[str | None, Query(max_length=32)] = None) -> ModelMonitoringOut:
    """Every window (and site) of every version of a model, and its open alerts (404: unknown)."""
    with radai.db.session() as s:
        try:
            reports = evaluate_model(s, model_id=model_id, version=version,
                                     settings=radai.settings.monitoring, level=_level(radai))
        except ModelNotMonitored as exc:
            raise HTTPException(404, str(exc)) from None
        alerts = [AlertOut.of(a) for a in open_alerts(s, model_id=model_id)]
    return ModelMonitoringOut(model_id=model_id, versions=[VersionOut.of(r) for r in reports],
                              open_alerts=alerts)


@api.get("/alerts", response_model=list[AlertOut])
def get_alerts(radai: RadaiDep,
               state: Annotated[str, Query(pattern="^(open|all)$")] = "open",
               model: Annotated[str | None, Query(max_length=64, description="Model id.")] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AlertOut]:
    """Alerts, open first then newest first (``state=all`` adds closed ones)."""
    with radai.db.session() as s:
        return [AlertOut.of(a) for a in open_alerts(s, model_id=model, include_closed=state == "all",
                                                    limit=limit)]


@api.post("/evaluate", response_model=RoundOut)
def post_evaluate(radai: RadaiDep) -> RoundOut:
    """Run one evaluation round now (the same as the periodic one) and say what changed."""
    monitor = Monitor(db=radai.db, storage=radai.storage, registry=radai.models,
                      settings=radai.settings.monitoring, level=_level(radai),
                      dashboard_url=f"{radai.settings.public_base_url}/monitoring")
    result = monitor.run_once()
    from radai.monitoring.models import Alert

    with radai.db.session() as s:
        alerts = {c.alert_id: s.get(Alert, c.alert_id) for c in result.changes}
    return RoundOut(
        profiled=result.profiled, versions=[f"{r.model_id}@{r.model_version}" for r in result.reports],
        opened=[AlertOut.of(a) for c in result.changes if c.event == "opened" and (a := alerts[c.alert_id])],
        closed=[AlertOut.of(a) for c in result.changes if c.event == "closed" and (a := alerts[c.alert_id])],
        suspended=[f"{m}@{v}" for m, v in result.suspended], notified=result.notified)


@api.post("/samples", response_model=SampleOut, status_code=201)
def post_sample(body: SampleCreate, radai: RadaiDep, user: CurrentUser, audit: Audit) -> SampleOut:
    """Draw a monitoring sample of a model version's studies and assign it to readers
    (radai.monitoring.samples; 422 naming the parameter when it cannot be drawn)."""
    try:
        with radai.db.transaction() as s:
            sample = create_sample(
                s, model_id=body.model_id, model_version=body.model_version, period_start=body.period_start,
                period_end=body.period_end, readers=body.readers, created_by=user.username,
                size=body.size or radai.settings.monitoring.sample_size, seed=body.seed, method=body.method)
            report = sample_report(s, sample_id=sample.id, level=_level(radai))
    except SampleError as exc:
        raise HTTPException(422, str(exc)) from None
    audit.record([st.study_instance_uid for st in report.studies], action="monitoring.sample.create")
    return SampleOut.of(report)


@api.get("/samples/{sample_id}", response_model=SampleOut)
def get_sample(sample_id: int, radai: RadaiDep, audit: Audit) -> SampleOut:
    """A sample, its studies and readers, and the agreement on the reviewed ones (404: unknown)."""
    with radai.db.session() as s:
        try:
            report = sample_report(s, sample_id=sample_id, level=_level(radai))
        except SampleNotFound:
            raise HTTPException(404, f"no sample {sample_id}") from None
    audit.record([st.study_instance_uid for st in report.studies], action="monitoring.sample.read")
    return SampleOut.of(report)


@pages.get("/monitoring", response_class=HTMLResponse)
def dashboard(request: Request, radai: RadaiDep) -> HTMLResponse:
    """The dashboard: per monitored model version its windows, checks, plots and open alerts."""
    settings = radai.settings.monitoring
    versions = []
    with radai.db.session() as s:
        for model_id, version in monitored_versions(s, settings=settings):
            report = evaluate_version(s, model_id=model_id, version=version, settings=settings,
                                      level=_level(radai))
            versions.append({"report": report, "figure": version_figure(report, settings),
                             "alerts": [a for a in open_alerts(s, model_id=model_id)
                                        if a.model_version == version]})
        samples = list_samples(s, limit=20)
    page: HTMLResponse = render(request, "monitoring.html", {
        "versions": versions, "settings": settings, "samples": samples})
    return page


def _alert_banner(request: Request, user: object) -> list[Banner]:
    """A banner on every page for users who manage models while alerts are open."""
    may = getattr(user, "may", None)
    if may is None or not may(Capability.MANAGE_MODELS):
        return []
    with request.app.state.radai.db.session() as s:
        alerts = open_alerts(s, limit=50)
    if not alerts:
        return []
    models = sorted({f"{a.model_id}@{a.model_version}" for a in alerts})
    suspended = sorted({f"{a.model_id}@{a.model_version}" for a in alerts if a.action == "suspended"})
    text = (f"{len(alerts)}{'+' if len(alerts) == 50 else ''} open monitoring alert"
            f"{'s' if len(alerts) != 1 else ''} on {', '.join(models)}")
    if suspended:
        text += f"; suspended by monitoring: {', '.join(suspended)}"
    return [Banner(text=text, href="/monitoring", level="alert")]


add_banner(_alert_banner)
