"""Signing a report: the draft becomes a read-only version, stored in the archive as DICOM.

Signing runs in three steps, because storing an instance goes through the archive's
indexer (its own transaction, which on SQLite must not wait behind ours):

1. one transaction saves the text as the draft and reads what the version will say
   (the signer's verdicts and missed findings) and what the SR needs (an instance of
   the study as evidence, the SR of the previous version);
2. the Comprehensive SR (:mod:`radai.worklist.report_sr`) is built and stored in the
   archive (as a result object: routing never sends it to a model);
3. one transaction marks the version signed, freezes the verdicts into it, records the
   SR's UIDs and takes the study off the worklist, provided the draft and the verdicts
   are still what step 1 read; otherwise nothing is signed (:class:`SignConflict`).

The SR's UID is derived from the version and its content, so signing the same draft
again after a failure in step 3 stores nothing twice. Should another edit win the race
of step 3, the SR stored in step 2 stays in the archive unsigned by any report row, and
the next signature stores a new SR.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Series
from radai.archive.service import Archive
from radai.db import Database, utcnow
from radai.logs import uid_ref
from radai.results.common import to_part10
from radai.routing.service import RESULT_SOURCE
from radai.worklist.models import Report, ReportStatus
from radai.worklist.report_sr import SignedReport, VerdictLine, report_document
from radai.worklist.service import (
    InvalidEntry,
    SnapshotLine,
    current_draft,
    latest_signed,
    mark_signed,
    require_editable,
    save_draft,
    snapshot_lines,
    study_pk_of,
    write_snapshot,
)

log = logging.getLogger(__name__)


class SignConflict(RuntimeError):
    """The draft or the signer's verdicts changed while the report was being signed."""


@dataclass(frozen=True)
class _Plan:
    study_pk: int
    study_instance_uid: str
    report_id: int
    version: int
    text: str
    updated_at: datetime
    lines: list[SnapshotLine]
    evidence_uid: str
    previous_uid: str | None
    institution: str


def _evidence_uid(session: Session, study_pk: int) -> str:
    """An instance of the study to take patient and study attributes from (an image first)."""
    uid = session.scalar(
        select(Instance.sop_instance_uid).join(Series, Series.id == Instance.series_pk)
        .where(Series.study_pk == study_pk)
        .order_by(case((Instance.source == RESULT_SOURCE, 1), else_=0), Instance.id).limit(1))
    if uid is None:
        raise InvalidEntry("the study has no instance to report on")
    return str(uid)


def _plan(session: Session, *, study_instance_uid: str, reader: str, text: str | None) -> _Plan:
    pk = study_pk_of(session, study_instance_uid=study_instance_uid)
    require_editable(session, pk)
    if text is None:
        draft = current_draft(session, study_pk=pk)
        if draft is None:
            raise InvalidEntry("text must not be empty to sign a report")
    else:
        draft = save_draft(session, study_pk=pk, author=reader, text=text)
    if not draft.text.strip():
        raise InvalidEntry("text must not be empty to sign a report")
    previous = latest_signed(session, study_pk=pk)
    institution = session.scalar(select(Series.institution_name).where(
        Series.study_pk == pk, Series.institution_name != "").limit(1)) or ""
    return _Plan(study_pk=pk, study_instance_uid=study_instance_uid, report_id=draft.id,
                 version=draft.version, text=draft.text, updated_at=draft.updated_at,
                 lines=snapshot_lines(session, study_pk=pk, reader=reader),
                 evidence_uid=_evidence_uid(session, pk),
                 previous_uid=previous.sop_instance_uid if previous else None,
                 institution=str(institution))


def _header(archive: Archive, sop_instance_uid: str) -> Dataset:
    path = archive.instance_path(sop_instance_uid)
    if path is None:
        raise InvalidEntry("an instance the report refers to is no longer in the archive")
    return dcmread(path, stop_before_pixels=True)


def sign_report(*, db: Database, archive: Archive, study_instance_uid: str, reader: str,
                text: str | None = None) -> Report:
    """Sign the study's report as ``reader`` (with ``text`` as its final text, if given).

    Raises :class:`radai.worklist.service.StudyNotFound`, :class:`ReportLocked` (signed and
    no addendum open), :class:`InvalidEntry` (empty or bad text) or :class:`SignConflict`.
    """
    with db.transaction() as s:
        plan = _plan(s, study_instance_uid=study_instance_uid, reader=reader, text=text)
    signed_at = utcnow()
    content = SignedReport(
        study_instance_uid=study_instance_uid, report_id=plan.report_id, version=plan.version,
        text=plan.text, reader=reader, signed_at=signed_at,
        verdicts=tuple(VerdictLine(verdict=ln.verdict, code_value=ln.code_value,
                                   code_scheme=ln.code_scheme, code_meaning=ln.code_meaning,
                                   model_id=ln.model_id, model_version=ln.model_version,
                                   probability=ln.probability, ai_positive=ln.ai_positive)
                       for ln in plan.lines))
    previous = [_header(archive, plan.previous_uid)] if plan.previous_uid else []
    sr = report_document(report=content, evidence=[_header(archive, plan.evidence_uid)],
                         previous=previous, organization=plan.institution)
    archive.store(to_part10(sr), source=RESULT_SOURCE)
    with db.transaction() as s:
        report = s.scalar(select(Report).where(Report.id == plan.report_id).with_for_update())
        if (report is None or report.status != ReportStatus.DRAFT.value
                or report.updated_at != plan.updated_at
                or snapshot_lines(s, study_pk=plan.study_pk, reader=reader) != plan.lines):
            raise SignConflict("the report or its verdicts changed while it was being signed; sign again")
        report.status = ReportStatus.SIGNED.value
        report.signed_by = reader
        report.signed_at = signed_at
        report.sop_class_uid = str(sr.SOPClassUID)
        report.sop_instance_uid = str(sr.SOPInstanceUID)
        report.series_instance_uid = str(sr.SeriesInstanceUID)
        write_snapshot(s, report=report, lines=plan.lines)
        mark_signed(s, study_pk=plan.study_pk, reader=reader)
    log.info("report version %d of study %s signed", plan.version, uid_ref(study_instance_uid))
    return report
