"""Evaluating model versions: which are monitored, their references, their windows.

:func:`evaluate_version` reads (one session, nothing written) and returns a
:class:`VersionReport`: one :class:`~radai.monitoring.evaluation.WindowReport` per window
for all sites together and, with ``site_by`` set, per site, plus the per-day history
the dashboard plots. What the checks mean for alerts is radai.monitoring.alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from radai.db import utcnow
from radai.inference.models import FINAL, InferenceTask, TaskPurpose
from radai.models.manifest import LifecycleState
from radai.models.models import ModelVersion
from radai.monitoring.data import (
    TaskRow,
    clinical_tasks,
    latest_validation_run,
    reviews,
    signed_labels,
    validation_tasks,
)
from radai.monitoring.evaluation import (
    DayPoint,
    Reference,
    WindowReport,
    daily,
    evaluate_window,
    select_window,
)
from radai.monitoring.models import Alert, AlertState, TaskInputProfile
from radai.monitoring.settings import MonitoringSettings


class ModelNotMonitored(LookupError):
    """No registered model with this id (and version)."""


@dataclass(frozen=True)
class VersionReport:
    """Monitoring of one model version at one moment."""

    model_id: str
    model_version: str
    #: Its lifecycle state (radai.models.manifest.LifecycleState value).
    state: str
    evaluated_at: datetime
    #: All sites first, then each site; within a site, the windows in settings order.
    windows: tuple[WindowReport, ...]
    #: Per-day history over ``dashboard_days`` (all sites).
    days: tuple[DayPoint, ...]
    #: The sites seen (empty unless ``site_by`` is set).
    sites: tuple[str, ...]


def monitored_versions(s: Session, *, settings: MonitoringSettings, now: datetime | None = None
                       ) -> list[tuple[str, str]]:
    """Model versions to evaluate: live or suspended ones, those with clinical tasks ended
    within the longest day window, and those with an open alert; sorted."""
    now = now or utcnow()
    days = max((w.days for w in settings.windows if w.days is not None), default=0.0)
    found: set[tuple[str, str]] = set()
    found.update(s.execute(select(ModelVersion.model_id, ModelVersion.version).where(
        ModelVersion.state.in_([LifecycleState.LIVE.value, LifecycleState.SUSPENDED.value]))).all())
    if days:
        found.update(s.execute(select(InferenceTask.model_id, InferenceTask.model_version).distinct().where(
            InferenceTask.purpose == TaskPurpose.CLINICAL.value, InferenceTask.state.in_(FINAL),
            InferenceTask.finished_at >= now - timedelta(days=days))).all())
    found.update(s.execute(select(Alert.model_id, Alert.model_version)
                           .where(Alert.state == AlertState.OPEN.value)).all())
    return sorted(found)


def versions_of(s: Session, *, model_id: str) -> list[tuple[str, str]]:
    """(id, version) of every registered version of ``model_id``; ModelNotMonitored if none."""
    rows = sorted(s.execute(select(ModelVersion.model_id, ModelVersion.version)
                            .where(ModelVersion.model_id == model_id)).all())
    if not rows:
        raise ModelNotMonitored(f"no model {model_id}")
    return list(rows)


def _state(s: Session, model_id: str, version: str) -> str:
    state = s.scalar(select(ModelVersion.state).where(ModelVersion.model_id == model_id,
                                                      ModelVersion.version == version))
    return state or ""


def _sites(s: Session, *, model_id: str, version: str, settings: MonitoringSettings) -> list[str]:
    column = {"institution": TaskInputProfile.institution,
              "calling_ae": TaskInputProfile.calling_ae}.get(settings.site_by)
    if column is None:
        return []
    values = s.scalars(select(column).distinct().join(
        InferenceTask, InferenceTask.id == TaskInputProfile.task_pk).where(
        TaskInputProfile.model_id == model_id, TaskInputProfile.model_version == version,
        InferenceTask.purpose == TaskPurpose.CLINICAL.value, column != ""))
    return sorted(values)


def _window_tasks(s: Session, *, model_id: str, version: str, settings: MonitoringSettings,
                  site: str, now: datetime) -> list[TaskRow]:
    """The union of what every window needs: the longest day window and the largest count."""
    days = max((w.days for w in settings.windows if w.days is not None), default=None)
    count = max((w.studies for w in settings.windows if w.studies is not None), default=None)
    by_pk: dict[int, TaskRow] = {}
    if days is not None:
        for t in clinical_tasks(s, model_id=model_id, version=version, site_by=settings.site_by, site=site,
                                since=now - timedelta(days=days)):
            by_pk[t.task_pk] = t
    if count is not None:
        for t in clinical_tasks(s, model_id=model_id, version=version, site_by=settings.site_by, site=site,
                                newest=count):
            by_pk[t.task_pk] = t
    return sorted(by_pk.values(), key=lambda t: (t.finished_at, t.task_pk))


def reference_for(s: Session, *, model_id: str, version: str, settings: MonitoringSettings,
                  site: str, window_tasks: Sequence[TaskRow], now: datetime,
                  validation: Reference | None = None) -> Reference:
    """The version's latest validation run, else the fallback of ``[monitoring.reference]``."""
    if validation is not None:
        return validation
    run = latest_validation_run(s, model_id=model_id, version=version)
    if run is not None:
        tasks = validation_tasks(s, model_id=model_id, version=version, run_id=run)
        return Reference("validation_run", f"validation run {run}", tuple(tasks), run)
    fb = settings.reference
    if fb.kind == "first":
        tasks = clinical_tasks(s, model_id=model_id, version=version, site_by=settings.site_by, site=site,
                               oldest=fb.studies)
        return Reference("first", f"first {len(tasks)} studies of this version", tuple(tasks))
    start = window_tasks[0].finished_at if window_tasks else now
    tasks = clinical_tasks(s, model_id=model_id, version=version, site_by=settings.site_by, site=site,
                           since=start - timedelta(days=fb.days), before=start)
    return Reference("preceding", f"{fb.days:g} days before the window", tuple(tasks))


def evaluate_version(s: Session, *, model_id: str, version: str, settings: MonitoringSettings,
                     now: datetime | None = None, level: float = 0.95) -> VersionReport:
    """Every window of one model version, over all sites and per site (``site_by``)."""
    now = now or utcnow()
    labels = signed_labels(s, model_id=model_id)
    validation: Reference | None = None
    run = latest_validation_run(s, model_id=model_id, version=version)
    if run is not None:
        validation = reference_for(s, model_id=model_id, version=version, settings=settings, site="",
                                   window_tasks=(), now=now)
    sites = _sites(s, model_id=model_id, version=version, settings=settings)
    windows: list[WindowReport] = []
    for site in ["", *sites]:
        tasks = _window_tasks(s, model_id=model_id, version=version, settings=settings, site=site, now=now)
        for window in settings.windows:
            selected = select_window(tasks, window, now)
            reference = reference_for(s, model_id=model_id, version=version, settings=settings, site=site,
                                      window_tasks=selected, now=now, validation=validation)
            windows.append(evaluate_window(
                selected, reference=reference, reviewed=reviews(labels, selected), settings=settings,
                window=window, site=site, model_id=model_id, model_version=version, now=now, level=level))
    history = clinical_tasks(s, model_id=model_id, version=version,
                             since=now - timedelta(days=settings.dashboard_days))
    return VersionReport(model_id=model_id, model_version=version, state=_state(s, model_id, version),
                         evaluated_at=now, windows=tuple(windows),
                         days=tuple(daily(history, reviews(labels, history), level=level)),
                         sites=tuple(sites))


def evaluate_model(s: Session, *, model_id: str, settings: MonitoringSettings, version: str | None = None,
                   now: datetime | None = None, level: float = 0.95) -> list[VersionReport]:
    """Every registered version of ``model_id`` (or one), newest registration last.

    Raises :class:`ModelNotMonitored` for an unknown model or version.
    """
    pairs = versions_of(s, model_id=model_id)
    if version is not None:
        pairs = [p for p in pairs if p[1] == version]
        if not pairs:
            raise ModelNotMonitored(f"no model {model_id}@{version}")
    return [evaluate_version(s, model_id=m, version=v, settings=settings, now=now, level=level)
            for m, v in pairs]


def open_alerts(s: Session, *, model_id: str | None = None, include_closed: bool = False,
                limit: int = 200) -> list[Alert]:
    """Alerts, open first then newest first; only open ones unless ``include_closed``."""
    q = select(Alert)
    if model_id is not None:
        q = q.where(Alert.model_id == model_id)
    if not include_closed:
        q = q.where(Alert.state == AlertState.OPEN.value)
    q = q.order_by(case((Alert.state == AlertState.OPEN.value, 0), else_=1), Alert.opened_at.desc(),
                   Alert.id.desc()).limit(limit)
    return list(s.scalars(q))
