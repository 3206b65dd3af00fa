"""UI pages of the radiologist workspace: ``/worklist`` and the study page ``/studies/{uid}``.

The worklist refreshes itself with htmx polling. Each refresh sends the version of the
rows it shows; when nothing a reader would see has changed (order, states, AI results,
waiting in 5-minute steps) the answer is ``204 No Content``, htmx keeps the rows, and
no patient data is sent again, so the audit log records the refresh without listing
the studies once more.

The study page embeds the OHIF viewer (``/viewer/viewer?StudyInstanceUIDs=…``), lists the
AI findings with verdict buttons, the missed findings, the report, and the priors.
State changes (verdicts, missed findings, report) are htmx POSTs carrying the CSRF
header; they need the ``review`` capability (radai.app mounts these pages so).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from radai.auth.deps import Audit, CurrentUser
from radai.auth.roles import Capability
from radai.db import utcnow
from radai.web.deps import RadaiDep
from radai.web.pages import NavItem, add_nav, render
from radai.worklist import service
from radai.worklist.models import ReadingStatus, VerdictValue
from radai.worklist.priority import duration_words
from radai.worklist.queue import WorklistFilter, institution_choices, modality_choices, worklist_page
from radai.worklist.reading import code_choices, model_notes, reading_view, study_item
from radai.worklist.router import error_status, known_codes, missed_code
from radai.worklist.schemas import AiResult, MissedFindingIn, ReadingOut, WorklistPage
from radai.worklist.signing import SignConflict, sign_report

router = APIRouter(include_in_schema=False)

add_nav(NavItem("Worklist", "/worklist", Capability.READ_STUDIES))

_READING_ERRORS = (service.StudyNotFound, service.FindingNotFound, service.ReportLocked,
                   service.InvalidEntry, SignConflict)


def _filters(modality: str | None, institution: str | None, status: str | None,
             ai_result: str | None, q: str | None) -> WorklistFilter:
    try:
        statuses = ((ReadingStatus(status),) if status and status != "all"
                    else tuple(ReadingStatus) if status == "all" else WorklistFilter().statuses)
        result = AiResult(ai_result) if ai_result else None
    except ValueError:
        raise HTTPException(422, "status or ai_result is not one of the listed values") from None
    return WorklistFilter(modality=modality or None, institution=institution or None, statuses=statuses,
                          ai_result=result, search=q or None)


def rows_version(page: WorklistPage) -> str:
    """What a reader sees of the rows, hashed (waiting time in 5-minute steps)."""
    seen = [(i.study_instance_uid, i.status, i.ai_result, i.emergency, i.overdue,
             int(i.waited_minutes // 5), round(i.priority), [f.id for f in i.findings],
             i.pending_models, i.opened_by) for i in page.items]
    return hashlib.sha256(json.dumps([page.total, seen], default=str).encode()).hexdigest()[:20]


Modality = Annotated[str | None, Query(max_length=16)]
Institution = Annotated[str | None, Query(max_length=64)]
StatusQ = Annotated[str | None, Query(max_length=16)]
AiResultQ = Annotated[str | None, Query(max_length=16)]
Search = Annotated[str | None, Query(max_length=64)]
Offset = Annotated[int, Query(ge=0)]


def _page(radai: RadaiDep, filters: WorklistFilter, offset: int) -> WorklistPage:
    with radai.db.session() as s:
        return worklist_page(s, settings=radai.settings.worklist, filters=filters,
                             limit=radai.settings.worklist.page_size, offset=offset)


def _context(request: Request, radai: RadaiDep, page: WorklistPage,
             filters: WorklistFilter) -> dict[str, object]:
    query = {k: v for k, v in request.query_params.items() if k not in ("offset", "version")}
    return {"page": page, "filters": filters, "version": rows_version(page),
            "refresh_seconds": radai.settings.worklist.refresh_seconds, "query": query,
            "prev_url": f"/worklist?{urlencode({**query, 'offset': max(0, page.offset - page.limit)})}",
            "next_url": f"/worklist?{urlencode({**query, 'offset': page.offset + page.limit})}",
            "duration": duration_words, "statuses": list(ReadingStatus), "ai_results": list(AiResult),
            "weights": radai.settings.worklist}


@router.get("/worklist", response_class=HTMLResponse)
def worklist(request: Request, radai: RadaiDep, audit: Audit, modality: Modality = None,
             institution: Institution = None, status: StatusQ = None, ai_result: AiResultQ = None,
             q: Search = None, offset: Offset = 0) -> HTMLResponse:
    """The worklist: studies to read, most urgent first, refreshing itself."""
    filters = _filters(modality, institution, status, ai_result, q)
    page = _page(radai, filters, offset)
    with radai.db.session() as s:
        choices = {"modalities": modality_choices(s), "institutions": institution_choices(s)}
    audit.record([i.study_instance_uid for i in page.items], action="worklist.page")
    selected = {"modality": modality or "", "institution": institution or "", "status": status or "",
                "ai_result": ai_result or "", "q": q or ""}
    return render(request, "worklist.html",
                  {**_context(request, radai, page, filters), **choices, "selected": selected})


@router.get("/worklist/rows", response_class=HTMLResponse, response_model=None)
def worklist_rows(request: Request, radai: RadaiDep, audit: Audit, modality: Modality = None,
                  institution: Institution = None, status: StatusQ = None, ai_result: AiResultQ = None,
                  q: Search = None, offset: Offset = 0,
                  version: Annotated[str | None, Query(max_length=40)] = None) -> Response:
    """The worklist's rows (htmx refresh); 204 when the reader already sees them."""
    filters = _filters(modality, institution, status, ai_result, q)
    page = _page(radai, filters, offset)
    if version is not None and version == rows_version(page):
        return Response(status_code=204)
    audit.record([i.study_instance_uid for i in page.items], action="worklist.refresh")
    return render(request, "worklist_rows.html", _context(request, radai, page, filters))


#: OHIF's hanging protocol that lays the first study out next to the second (its prior);
#: without it OHIF shows only the first study and lists the other in its study browser.
COMPARE_PROTOCOL = "@ohif/hpCompare"


def viewer_url(study_uids: list[str]) -> str:
    """The embedded viewer's URL: one study, or a study and a prior side by side."""
    query = {"StudyInstanceUIDs": ",".join(study_uids)}
    if len(study_uids) > 1:
        query["hangingProtocolId"] = COMPARE_PROTOCOL
    return "/viewer/viewer?" + urlencode(query)


def _study_context(request: Request, radai: RadaiDep, user: CurrentUser, study_uid: str,
                   compare: str | None) -> dict[str, object]:
    now = utcnow()
    with radai.db.session() as s:
        pk = service.study_pk_of(s, study_instance_uid=study_uid)
        item = study_item(s, study_pk=pk, settings=radai.settings.worklist, now=now)
        reading = reading_view(s, study_instance_uid=study_uid, reader=user.username,
                               settings=radai.settings.worklist, now=now)
    prior_uids = [p.study_instance_uid for p in reading.priors]
    shown = [study_uid] + ([compare] if compare in prior_uids else [])
    notes = model_notes(radai.models, {(f.model_id, f.model_version) for f in item.findings}
                        | {(d.model_id, d.model_version) for d in item.defects})
    draft = next((r for r in reading.reports if r.status == "draft"), None)
    return {
        "item": item, "reading": reading, "notes": notes, "draft": draft,
        "signed": [r for r in reading.reports if r.status == "signed"],
        "can_review": user.may(Capability.REVIEW), "verdicts": list(VerdictValue),
        "choices": code_choices(radai.models, {f.model_id for f in item.findings}),
        "viewer_url": viewer_url(shown),
        "comparing": compare if len(shown) > 1 else None, "duration": duration_words,
    }


@router.get("/studies/{study_uid}", response_class=HTMLResponse)
def study_page(request: Request, study_uid: str, radai: RadaiDep, audit: Audit, user: CurrentUser,
               compare: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
    """A study: the viewer, the AI findings with verdicts, the report, the priors.

    Opened by a user who may review, an unread study becomes *in review*.
    """
    if user.may(Capability.REVIEW):
        try:
            with radai.db.transaction() as s:
                service.open_study(s, study_pk=service.study_pk_of(s, study_instance_uid=study_uid),
                                   reader=user.username)
        except service.StudyNotFound as exc:
            raise error_status(exc) from None
    try:
        ctx = _study_context(request, radai, user, study_uid, compare)
    except service.StudyNotFound as exc:
        raise error_status(exc) from None
    reading = cast(ReadingOut, ctx["reading"])
    audit.record([study_uid, *(p.study_instance_uid for p in reading.priors)], action="worklist.study_page")
    return render(request, "study.html", ctx)


def _fragment(request: Request, radai: RadaiDep, user: CurrentUser, study_uid: str, template: str,
              **extra: object) -> HTMLResponse:
    ctx = _study_context(request, radai, user, study_uid, None)
    return render(request, template, {**ctx, **extra})


@router.post("/studies/{study_uid}/findings/{finding_id}/verdict", response_class=HTMLResponse)
def verdict_form(request: Request, study_uid: str, finding_id: int, radai: RadaiDep, audit: Audit,
                 user: CurrentUser, verdict: Annotated[str, Form(max_length=16)]) -> HTMLResponse:
    """Record the reader's verdict on a finding; answers the finding's card."""
    try:
        with radai.db.transaction() as s:
            pk = service.study_pk_of(s, study_instance_uid=study_uid)
            service.record_verdict(s, finding_id=finding_id, reader=user.username, verdict=verdict,
                                   study_pk=pk)
        response = _fragment(request, radai, user, study_uid, "_finding.html", finding_id=finding_id)
    except _READING_ERRORS as exc:
        raise error_status(exc) from None
    audit.record(study_uid, action="worklist.verdict")
    return response


@router.post("/studies/{study_uid}/missed", response_class=HTMLResponse)
def missed_form(request: Request, study_uid: str, radai: RadaiDep, audit: Audit, user: CurrentUser,
                choice: Annotated[str, Form(max_length=160)] = "",
                text: Annotated[str, Form(max_length=64)] = "") -> HTMLResponse:
    """Add a missed finding (a model's finding code, or free text); answers the missed list."""
    model_id, _, rest = choice.partition("|")
    scheme, _, value = rest.partition("|")
    body = (MissedFindingIn(text=text) if text.strip() else
            MissedFindingIn(model_id=model_id or None, code_scheme=scheme or None, code_value=value or None))
    try:
        code_value, code_scheme, meaning, chosen = missed_code(body, known=known_codes(radai))
        with radai.db.transaction() as s:
            pk = service.study_pk_of(s, study_instance_uid=study_uid)
            service.add_missed_finding(s, study_pk=pk, reader=user.username, code_value=code_value,
                                       code_scheme=code_scheme, code_meaning=meaning, model_id=chosen)
        response = _fragment(request, radai, user, study_uid, "_missed.html")
    except _READING_ERRORS as exc:
        raise error_status(exc) from None
    audit.record(study_uid, action="worklist.missed_finding")
    return response


@router.post("/studies/{study_uid}/missed/{missed_id}/delete", response_class=HTMLResponse)
def missed_delete_form(request: Request, study_uid: str, missed_id: int, radai: RadaiDep, audit: Audit,
                       user: CurrentUser) -> HTMLResponse:
    """Withdraw a missed finding; answers the missed list."""
    try:
        with radai.db.transaction() as s:
            pk = service.study_pk_of(s, study_instance_uid=study_uid)
            service.remove_missed_finding(s, missed_id=missed_id, reader=user.username, study_pk=pk)
        response = _fragment(request, radai, user, study_uid, "_missed.html")
    except _READING_ERRORS as exc:
        raise error_status(exc) from None
    audit.record(study_uid, action="worklist.missed_finding")
    return response


@router.post("/studies/{study_uid}/report", response_class=HTMLResponse, response_model=None)
async def report_form(request: Request, study_uid: str, radai: RadaiDep, audit: Audit, user: CurrentUser,
                      text: Annotated[str, Form(max_length=20_000)] = "",
                      action: Annotated[str, Form(max_length=8)] = "save") -> Response:
    """Save the draft (answers the report panel) or sign it (sends the browser to the study page)."""
    try:
        if action == "sign":
            await run_in_threadpool(sign_report, db=radai.db, archive=radai.archive,
                                    study_instance_uid=study_uid, reader=user.username, text=text)
            audit.record(study_uid, action="worklist.report_signed")
            return _to_study(request, study_uid)
        await run_in_threadpool(_save_draft, radai, study_uid, user.username, text)
        response = await run_in_threadpool(_fragment, request, radai, user, study_uid, "_report.html",
                                           saved=True)
    except _READING_ERRORS as exc:
        raise error_status(exc) from None
    audit.record(study_uid, action="worklist.report_draft")
    return response


def _save_draft(radai: RadaiDep, study_uid: str, reader: str, text: str) -> None:
    with radai.db.transaction() as s:
        pk = service.study_pk_of(s, study_instance_uid=study_uid)
        service.require_editable(s, pk)
        service.save_draft(s, study_pk=pk, author=reader, text=text)


@router.post("/studies/{study_uid}/report/addendum", response_model=None)
def addendum_form(request: Request, study_uid: str, radai: RadaiDep, audit: Audit,
                  user: CurrentUser) -> Response:
    """Open an addendum to the signed report and go back to the study page."""
    try:
        with radai.db.transaction() as s:
            service.start_addendum(s, study_pk=service.study_pk_of(s, study_instance_uid=study_uid),
                                   author=user.username)
    except _READING_ERRORS as exc:
        raise error_status(exc) from None
    audit.record(study_uid, action="worklist.addendum")
    return _to_study(request, study_uid)


def _to_study(request: Request, study_uid: str) -> Response:
    url = f"/studies/{study_uid}"
    if request.headers.get("HX-Request"):
        # htmx follows HX-Redirect with a full page load.
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)
