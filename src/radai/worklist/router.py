"""JSON API of the worklist and of reading a study (mounted under ``/api/v1``).

radai.app mounts it for users who may read studies, with the ``review`` capability needed
in addition by every request that changes state (verdicts, missed findings, reports):
radiologists review; admins and annotators read only. Routes record in the audit log the
studies whose data they return or change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from starlette.concurrency import run_in_threadpool

from radai.app import Radai
from radai.auth.deps import Audit, CurrentUser
from radai.db import utcnow
from radai.inference.schemas import CodeOut
from radai.web.deps import RadaiDep
from radai.worklist import service
from radai.worklist.models import ReadingStatus, Report
from radai.worklist.queue import WorklistFilter, worklist_page
from radai.worklist.reading import reading_view, report_out
from radai.worklist.schemas import (
    AiResult,
    MissedFindingIn,
    MissedFindingOut,
    ReadingOut,
    ReportIn,
    ReportOut,
    VerdictIn,
    WorklistPage,
)
from radai.worklist.signing import SignConflict, sign_report

router = APIRouter(prefix="/api/v1", tags=["worklist"])

_NOT_ARCHIVED = "the study is not in the archive"


def error_status(exc: Exception) -> HTTPException:
    """The HTTP answer to a reading error (messages hold no patient data)."""
    if isinstance(exc, service.StudyNotFound):
        return HTTPException(404, _NOT_ARCHIVED)
    if isinstance(exc, service.FindingNotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, service.ReportLocked | SignConflict):
        return HTTPException(409, str(exc))
    if isinstance(exc, service.InvalidEntry):
        return HTTPException(422, str(exc))
    raise exc


@router.get("/worklist", response_model=WorklistPage)
def get_worklist(
        radai: RadaiDep, audit: Audit,
        modality: Annotated[str | None, Query(max_length=16, description="Modality (0008,0060).")] = None,
        institution: Annotated[str | None, Query(max_length=64, description="Institution Name.")] = None,
        status: Annotated[list[ReadingStatus] | None, Query(
            description="Reading states (repeat for several); default unread and in_review.")] = None,
        ai_result: Annotated[AiResult | None, Query(description="The AI's result.")] = None,
        q: Annotated[str | None, Query(max_length=64, description=(
            "Words of the patient's name, or the start of Patient ID or Accession Number."))] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0) -> WorklistPage:
    """Studies to read, most urgent first, with AI results and why each is where it is."""
    filters = WorklistFilter(modality=modality, institution=institution,
                             statuses=tuple(status) if status else WorklistFilter().statuses,
                             ai_result=ai_result, search=q)
    with radai.db.session() as s:
        page = worklist_page(s, settings=radai.settings.worklist, filters=filters, limit=limit,
                             offset=offset)
    audit.record([i.study_instance_uid for i in page.items], action="worklist.read")
    return page


@router.get("/studies/{study_uid}/reading", response_model=ReadingOut)
def get_reading(study_uid: str, radai: RadaiDep, audit: Audit, user: CurrentUser) -> ReadingOut:
    """The study's reading state, your verdicts and missed findings, its reports and priors."""
    with radai.db.session() as s:
        try:
            out = reading_view(s, study_instance_uid=study_uid, reader=user.username,
                               settings=radai.settings.worklist, now=utcnow())
        except service.StudyNotFound as exc:
            raise error_status(exc) from None
    audit.record([study_uid, *(p.study_instance_uid for p in out.priors)], action="worklist.reading")
    return out


@router.put("/studies/{study_uid}/findings/{finding_id}/verdict", status_code=204)
def put_verdict(study_uid: str, finding_id: int, body: VerdictIn, radai: RadaiDep, audit: Audit,
                user: CurrentUser) -> Response:
    """Record your verdict on an AI finding of the study (replaces your earlier one)."""
    try:
        with radai.db.transaction() as s:
            pk = service.study_pk_of(s, study_instance_uid=study_uid)
            service.record_verdict(s, finding_id=finding_id, reader=user.username, verdict=body.verdict,
                                   study_pk=pk)
    except (service.StudyNotFound, service.FindingNotFound, service.ReportLocked) as exc:
        raise error_status(exc) from None
    audit.record(study_uid, action="worklist.verdict", status=204)
    return Response(status_code=204)


@router.delete("/studies/{study_uid}/findings/{finding_id}/verdict", status_code=204)
def delete_verdict(study_uid: str, finding_id: int, radai: RadaiDep, audit: Audit,
                   user: CurrentUser) -> Response:
    """Withdraw your verdict on an AI finding."""
    try:
        with radai.db.transaction() as s:
            pk = service.study_pk_of(s, study_instance_uid=study_uid)
            service.clear_verdict(s, finding_id=finding_id, reader=user.username, study_pk=pk)
    except (service.StudyNotFound, service.FindingNotFound, service.ReportLocked) as exc:
        raise error_status(exc) from None
    audit.record(study_uid, action="worklist.verdict", status=204)
    return Response(status_code=204)


def missed_code(body: MissedFindingIn, *, known: dict[tuple[str, str, str], str]
                ) -> tuple[str, str, str, str | None]:
    """(value, scheme, meaning, model) of a missed finding: a model's finding code, or free text.

    ``known`` maps (model id, scheme, value) of every registered model's findings to their
    Code Meaning.
    """
    if body.text and (body.code_value or body.code_scheme or body.model_id):
        raise service.InvalidEntry("give either text or a model's code, not both")
    if body.text:
        value, scheme, meaning = service.free_text_code(body.text)
        return value, scheme, meaning, None
    key = (body.model_id or "", body.code_scheme or "", body.code_value or "")
    if key not in known:
        raise service.InvalidEntry("model_id, code_scheme and code_value must name a finding of a "
                                   "registered model (or give text)")
    return key[2], key[1], known[key], key[0]


def known_codes(radai: Radai) -> dict[tuple[str, str, str], str]:
    """(model id, scheme, value) → Code Meaning of every registered model's findings."""
    return {(r.model_id, f.code.scheme, f.code.value): f.code.meaning
            for r in radai.models.list() for f in r.manifest.outputs.findings}


@router.post("/studies/{study_uid}/missed-findings", status_code=201, response_model=MissedFindingOut)
def post_missed(study_uid: str, body: MissedFindingIn, radai: RadaiDep, audit: Audit,
                user: CurrentUser) -> MissedFindingOut:
    """Record a finding the AI did not report: a model's finding code, or free text."""
    try:
        value, scheme, meaning, model_id = missed_code(body, known=known_codes(radai))
        with radai.db.transaction() as s:
            pk = service.study_pk_of(s, study_instance_uid=study_uid)
            row = service.add_missed_finding(s, study_pk=pk, reader=user.username, code_value=value,
                                             code_scheme=scheme, code_meaning=meaning, model_id=model_id)
            out = MissedFindingOut(id=row.id, model_id=row.model_id, code=CodeOut(
                value=row.code_value, scheme=row.code_scheme, meaning=row.code_meaning))
    except (service.StudyNotFound, service.InvalidEntry, service.ReportLocked) as exc:
        raise error_status(exc) from None
    audit.record(study_uid, action="worklist.missed_finding", status=201)
    return out


@router.delete("/studies/{study_uid}/missed-findings/{missed_id}", status_code=204)
def delete_missed(study_uid: str, missed_id: int, radai: RadaiDep, audit: Audit,
                  user: CurrentUser) -> Response:
    """Withdraw one of your missed findings."""
    try:
        with radai.db.transaction() as s:
            pk = service.study_pk_of(s, study_instance_uid=study_uid)
            if not service.remove_missed_finding(s, missed_id=missed_id, reader=user.username, study_pk=pk):
                raise HTTPException(404, f"you recorded no missed finding {missed_id} in this study")
    except (service.StudyNotFound, service.ReportLocked) as exc:
        raise error_status(exc) from None
    audit.record(study_uid, action="worklist.missed_finding", status=204)
    return Response(status_code=204)


@router.put("/studies/{study_uid}/report", response_model=ReportOut)
def put_report(study_uid: str, body: ReportIn, radai: RadaiDep, audit: Audit, user: CurrentUser) -> ReportOut:
    """Save the report draft's text (a new version after a signed one only via ``addendum``)."""
    try:
        with radai.db.transaction() as s:
            pk = service.study_pk_of(s, study_instance_uid=study_uid)
            service.require_editable(s, pk)
            out = report_out(service.save_draft(s, study_pk=pk, author=user.username, text=body.text))
    except (service.StudyNotFound, service.InvalidEntry, service.ReportLocked) as exc:
        raise error_status(exc) from None
    audit.record(study_uid, action="worklist.report_draft")
    return out


@router.post("/studies/{study_uid}/report/addendum", status_code=201, response_model=ReportOut)
def post_addendum(study_uid: str, radai: RadaiDep, audit: Audit, user: CurrentUser) -> ReportOut:
    """Open an addendum to the signed report (a new draft version)."""
    try:
        with radai.db.transaction() as s:
            pk = service.study_pk_of(s, study_instance_uid=study_uid)
            out = report_out(service.start_addendum(s, study_pk=pk, author=user.username))
    except (service.StudyNotFound, service.InvalidEntry) as exc:
        raise error_status(exc) from None
    audit.record(study_uid, action="worklist.addendum", status=201)
    return out


@router.post("/studies/{study_uid}/report/sign", status_code=201, response_model=ReportOut)
async def post_sign(study_uid: str, body: ReportIn, radai: RadaiDep, audit: Audit,
                    user: CurrentUser) -> ReportOut:
    """Sign the report with this text: it becomes read-only, is stored in the archive as a
    DICOM Comprehensive SR, and the study leaves the worklist."""
    try:
        report = await run_in_threadpool(sign_report, db=radai.db, archive=radai.archive,
                                         study_instance_uid=study_uid, reader=user.username,
                                         text=body.text)
    except (service.StudyNotFound, service.InvalidEntry, service.ReportLocked, SignConflict) as exc:
        raise error_status(exc) from None
    with radai.db.session() as s:
        row = s.get(Report, report.id)
        assert row is not None
        out = report_out(row)
    audit.record(study_uid, action="worklist.report_signed", status=201)
    return out
