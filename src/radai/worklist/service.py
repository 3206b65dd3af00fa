"""Reading a study: opening it, verdicts, missed findings, report drafts, signing, ground truth.

Functions are keyword-only and take a session; the caller owns the transaction. The
semantics of verdicts, missed findings, reports and ground truth labels are those of
:mod:`radai.worklist.models`. Signing has its own module (:mod:`radai.worklist.signing`)
because it stores a DICOM object in the archive between two transactions.

What model monitoring calls:

- :func:`ground_truth` — the labels of the latest signed report of each study, one
  :class:`GroundTruth` per judged AI finding and per missed finding;
- :func:`reader_verdicts` — every reader's current working verdicts (for agreement
  between readers and for monitoring before reports are signed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from radai.archive.models import Study
from radai.db import utcnow
from radai.inference.models import Finding, InferenceTask, TaskPurpose
from radai.worklist.models import (
    FREE_TEXT_SCHEME,
    MISSED,
    MissedFinding,
    ReadingStatus,
    Report,
    ReportStatus,
    ReportVerdict,
    StudyReading,
    Verdict,
    VerdictValue,
)

#: Longest report text accepted (a Basic Text SR TEXT item is UT: up to 2^32-2 bytes,
#: PS3.5 Table 6.2-1; this bound keeps pages and the database sensible).
MAX_REPORT_CHARS = 20_000
#: Code Meaning (0008,0104) is LO: at most 64 characters (PS3.5 Table 6.2-1).
MAX_CODE_MEANING = 64


class StudyNotFound(LookupError):
    """The study is not in the archive."""


class FindingNotFound(LookupError):
    """No clinical AI finding with this id (in this study)."""


class ReportLocked(RuntimeError):
    """The study's report is signed: nothing may change until an addendum is started."""


class InvalidEntry(ValueError):
    """A verdict, missed finding or report text that cannot be stored; names the field."""


# --- studies and reading state ------------------------------------------------------


def study_pk_of(session: Session, *, study_instance_uid: str) -> int:
    """The index key of a study; :class:`StudyNotFound` when it is not archived."""
    pk = session.scalar(select(Study.id).where(Study.study_instance_uid == study_instance_uid))
    if pk is None:
        raise StudyNotFound("the study is not in the archive")
    return int(pk)


def reading_status(session: Session, *, study_pk: int) -> ReadingStatus:
    """Where the study is in its reading (unread when it was never opened by a reviewer)."""
    value = session.scalar(select(StudyReading.status).where(StudyReading.study_pk == study_pk))
    return ReadingStatus(value) if value else ReadingStatus.UNREAD


def _reading(session: Session, study_pk: int) -> StudyReading:
    row = session.scalar(select(StudyReading).where(StudyReading.study_pk == study_pk))
    if row is None:
        row = StudyReading(study_pk=study_pk, status=ReadingStatus.UNREAD.value, updated_at=utcnow())
        session.add(row)
        session.flush()
    return row


def open_study(session: Session, *, study_pk: int, reader: str) -> ReadingStatus:
    """A reviewer opened the study: unread becomes in review (other states stay)."""
    row = _reading(session, study_pk)
    if row.status == ReadingStatus.UNREAD.value:
        now = utcnow()
        row.status = ReadingStatus.IN_REVIEW.value
        row.opened_by = reader
        row.opened_at = now
        row.updated_at = now
    return ReadingStatus(row.status)


def mark_signed(session: Session, *, study_pk: int, reader: str) -> None:
    """The study's report was signed: it leaves the worklist."""
    row = _reading(session, study_pk)
    now = utcnow()
    row.status = ReadingStatus.SIGNED.value
    row.signed_by = reader
    row.signed_at = now
    row.updated_at = now
    if row.opened_at is None:
        row.opened_by, row.opened_at = reader, now


def editable(session: Session, *, study_pk: int) -> bool:
    """Whether verdicts and the report may change: no signed version yet, or an open addendum."""
    signed = session.scalar(select(func.count()).select_from(Report).where(
        Report.study_pk == study_pk, Report.status == ReportStatus.SIGNED.value))
    return not signed or current_draft(session, study_pk=study_pk) is not None


def require_editable(session: Session, study_pk: int) -> None:
    """Raise :class:`ReportLocked` unless verdicts and the report of the study may change."""
    if not editable(session, study_pk=study_pk):
        raise ReportLocked("the report is signed; start an addendum to change it")


# --- verdicts -----------------------------------------------------------------------


def _clinical_finding(session: Session, finding_id: int, study_pk: int | None) -> Finding:
    finding = session.scalar(
        select(Finding).join(InferenceTask, InferenceTask.id == Finding.task_pk)
        .where(Finding.id == finding_id, InferenceTask.purpose == TaskPurpose.CLINICAL.value))
    if finding is None or (study_pk is not None and finding.study_pk != study_pk):
        raise FindingNotFound(f"no AI finding {finding_id} in this study")
    return finding


def record_verdict(session: Session, *, finding_id: int, reader: str, verdict: VerdictValue | str,
                   study_pk: int | None = None) -> Verdict:
    """Record ``reader``'s verdict on an AI finding; replaces the reader's earlier verdict.

    Idempotent: the same verdict twice leaves one row unchanged (its ``updated_at`` too).
    With ``study_pk`` the finding must belong to that study. Raises
    :class:`FindingNotFound`, :class:`InvalidEntry` (unknown verdict) or
    :class:`ReportLocked`.
    """
    try:
        value = VerdictValue(verdict)
    except ValueError:
        raise InvalidEntry("verdict must be one of " + ", ".join(v.value for v in VerdictValue)) from None
    finding = _clinical_finding(session, finding_id, study_pk)
    require_editable(session, finding.study_pk)
    # Lock the row (PostgreSQL) so that two clicks of one reader cannot both insert.
    row = session.scalar(select(Verdict).where(Verdict.finding_pk == finding.id,
                                               Verdict.reader == reader).with_for_update())
    now = utcnow()
    if row is None:
        row = Verdict(finding_pk=finding.id, study_pk=finding.study_pk, reader=reader,
                      verdict=value.value, created_at=now, updated_at=now)
        session.add(row)
        session.flush()
    elif row.verdict != value.value:
        row.verdict = value.value
        row.updated_at = now
    return row


def clear_verdict(session: Session, *, finding_id: int, reader: str, study_pk: int | None = None) -> bool:
    """Withdraw ``reader``'s verdict on a finding (of ``study_pk``, if given); False when
    there was none."""
    finding = _clinical_finding(session, finding_id, study_pk)
    require_editable(session, finding.study_pk)
    row = session.scalar(select(Verdict).where(Verdict.finding_pk == finding_id,
                                               Verdict.reader == reader))
    if row is None:
        return False
    session.delete(row)
    return True


def verdicts_of_reader(session: Session, *, study_pk: int, reader: str) -> dict[int, VerdictValue]:
    """Finding id → ``reader``'s verdict, for one study."""
    return {int(f): VerdictValue(v) for f, v in session.execute(
        select(Verdict.finding_pk, Verdict.verdict)
        .where(Verdict.study_pk == study_pk, Verdict.reader == reader))}


def free_text_code(text: str) -> tuple[str, str, str]:
    """(code value, scheme, meaning) of a free-text finding: ``99RADAI-FT`` with a digest.

    The code value is the first 16 hex digits of SHA-256 of the text in lower case with
    runs of white space folded, so the same words give the same code.
    """
    meaning = " ".join(text.split())
    if not meaning:
        raise InvalidEntry("label must not be empty")
    if len(meaning) > MAX_CODE_MEANING:
        raise InvalidEntry(f"label must be at most {MAX_CODE_MEANING} characters")
    digest = hashlib.sha256(meaning.lower().encode("utf-8")).hexdigest()[:16]
    return digest, FREE_TEXT_SCHEME, meaning


def add_missed_finding(session: Session, *, study_pk: int, reader: str, code_value: str,
                       code_scheme: str, code_meaning: str,
                       model_id: str | None = None) -> MissedFinding:
    """Record a finding the AI did not report (idempotent per study, reader and code)."""
    for name, value, limit in (("code_value", code_value, 64), ("code_scheme", code_scheme, 16),
                               ("code_meaning", code_meaning, MAX_CODE_MEANING)):
        if not value.strip() or len(value.strip()) > limit:
            raise InvalidEntry(f"{name} must be 1-{limit} characters")
    require_editable(session, study_pk)
    existing = session.scalar(select(MissedFinding).where(
        MissedFinding.study_pk == study_pk, MissedFinding.reader == reader,
        MissedFinding.code_scheme == code_scheme.strip(), MissedFinding.code_value == code_value.strip()))
    if existing is not None:
        return existing
    row = MissedFinding(study_pk=study_pk, reader=reader, model_id=model_id,
                        code_value=code_value.strip(), code_scheme=code_scheme.strip(),
                        code_meaning=code_meaning.strip(), created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def remove_missed_finding(session: Session, *, missed_id: int, reader: str,
                          study_pk: int | None = None) -> bool:
    """Withdraw one of ``reader``'s missed findings (of ``study_pk``, if given); False when
    there is no such entry."""
    row = session.get(MissedFinding, missed_id)
    if row is None or row.reader != reader or (study_pk is not None and row.study_pk != study_pk):
        return False
    require_editable(session, row.study_pk)
    session.delete(row)
    return True


def missed_of_reader(session: Session, *, study_pk: int, reader: str) -> list[MissedFinding]:
    """``reader``'s missed findings in one study, oldest first."""
    return list(session.scalars(select(MissedFinding).where(
        MissedFinding.study_pk == study_pk, MissedFinding.reader == reader).order_by(MissedFinding.id)))


# --- reports ------------------------------------------------------------------------


def current_draft(session: Session, *, study_pk: int) -> Report | None:
    """The study's draft report version, if one is open."""
    return session.scalar(select(Report).where(Report.study_pk == study_pk,
                                               Report.status == ReportStatus.DRAFT.value))


def reports_of(session: Session, *, study_pk: int) -> list[Report]:
    """Every report version of a study, oldest first."""
    return list(session.scalars(select(Report).where(Report.study_pk == study_pk)
                                .order_by(Report.version)))


def latest_signed(session: Session, *, study_pk: int) -> Report | None:
    """The study's newest signed report version."""
    return session.scalar(select(Report).where(Report.study_pk == study_pk,
                                               Report.status == ReportStatus.SIGNED.value)
                          .order_by(Report.version.desc()).limit(1))


def _check_text(text: str) -> str:
    if len(text) > MAX_REPORT_CHARS:
        raise InvalidEntry(f"text must be at most {MAX_REPORT_CHARS} characters")
    if any(ord(c) < 32 and c not in "\n\r\t" for c in text):
        raise InvalidEntry("text must not hold control characters")
    return text.replace("\r\n", "\n")


def save_draft(session: Session, *, study_pk: int, author: str, text: str) -> Report:
    """Save the report text as the study's draft (a new version when none is open).

    The first version is the report; once it is signed, a new draft is an addendum
    (version 2, 3…). Raises :class:`InvalidEntry` for text that cannot be stored.
    """
    text = _check_text(text)
    now = utcnow()
    draft = current_draft(session, study_pk=study_pk)
    if draft is None:
        last = session.scalar(select(func.max(Report.version)).where(Report.study_pk == study_pk))
        draft = Report(study_pk=study_pk, version=int(last or 0) + 1,
                       status=ReportStatus.DRAFT.value, text=text, author=author,
                       created_at=now, updated_at=now)
        session.add(draft)
        session.flush()
    elif draft.text != text:
        draft.text = text
        draft.author = author
        draft.updated_at = now
    return draft


def start_addendum(session: Session, *, study_pk: int, author: str) -> Report:
    """Open an addendum to a signed report (a new draft version, empty text)."""
    draft = current_draft(session, study_pk=study_pk)
    if draft is not None:
        return draft
    if latest_signed(session, study_pk=study_pk) is None:
        raise InvalidEntry("an addendum needs a signed report")
    return save_draft(session, study_pk=study_pk, author=author, text="")


@dataclass(frozen=True)
class SnapshotLine:
    """A verdict or missed finding as it will be frozen into a signed report version."""

    finding_pk: int | None
    verdict: str
    model_id: str | None
    model_version: str | None
    code_value: str
    code_scheme: str
    code_meaning: str
    probability: float | None
    threshold: float | None
    ai_positive: bool | None


def snapshot_lines(session: Session, *, study_pk: int, reader: str) -> list[SnapshotLine]:
    """``reader``'s verdicts (finding order) then missed findings, as a report would freeze them.

    Findings keep their score and decision of the time, so the label stays right even if
    the finding is later superseded by a new run.
    """
    lines = [SnapshotLine(
        finding_pk=f.id, verdict=verdict, model_id=f.model_id, model_version=f.model_version,
        code_value=f.code_value, code_scheme=f.code_scheme, code_meaning=f.code_meaning,
        probability=f.probability, threshold=f.threshold, ai_positive=f.positive)
        for verdict, f in session.execute(
            select(Verdict.verdict, Finding).join(Finding, Finding.id == Verdict.finding_pk)
            .where(Verdict.study_pk == study_pk, Verdict.reader == reader).order_by(Finding.id))]
    lines += [SnapshotLine(
        finding_pk=None, verdict=MISSED, model_id=m.model_id, model_version=None,
        code_value=m.code_value, code_scheme=m.code_scheme, code_meaning=m.code_meaning,
        probability=None, threshold=None, ai_positive=None)
        for m in missed_of_reader(session, study_pk=study_pk, reader=reader)]
    return lines


def write_snapshot(session: Session, *, report: Report, lines: Sequence[SnapshotLine]) -> list[ReportVerdict]:
    """Freeze ``lines`` into ``report`` (:class:`ReportVerdict` rows)."""
    rows = [ReportVerdict(
        report_pk=report.id, finding_pk=line.finding_pk, verdict=line.verdict, model_id=line.model_id,
        model_version=line.model_version, code_value=line.code_value, code_scheme=line.code_scheme,
        code_meaning=line.code_meaning, probability=line.probability, threshold=line.threshold,
        ai_positive=line.ai_positive) for line in lines]
    session.add_all(rows)
    session.flush()
    return rows


def snapshot_verdicts(session: Session, *, report: Report, reader: str) -> list[ReportVerdict]:
    """Copy ``reader``'s current verdicts and missed findings into ``report``."""
    return write_snapshot(session, report=report,
                          lines=snapshot_lines(session, study_pk=report.study_pk, reader=reader))


# --- ground truth (for model monitoring) --------------------------------------------


@dataclass(frozen=True)
class GroundTruth:
    """One label from a signed report (see :mod:`radai.worklist.models`)."""

    study_instance_uid: str
    report_id: int
    report_version: int
    reader: str
    signed_at: datetime
    #: The AI finding judged; None for a missed finding.
    finding_id: int | None
    #: agree, disagree, uncertain or missed.
    verdict: str
    model_id: str | None
    model_version: str | None
    code_value: str
    code_scheme: str
    code_meaning: str
    probability: float | None
    threshold: float | None
    ai_positive: bool | None

    @property
    def truth(self) -> bool | None:
        """Whether the finding is really present: the AI's decision if agreed, its opposite
        if not, unknown when uncertain; True for a missed finding."""
        if self.verdict == MISSED:
            return True
        if self.verdict == VerdictValue.UNCERTAIN.value or self.ai_positive is None:
            return None
        return self.ai_positive if self.verdict == VerdictValue.AGREE.value else not self.ai_positive


def ground_truth(session: Session, *, model_id: str | None = None, model_version: str | None = None,
                 signed_from: datetime | None = None, signed_to: datetime | None = None,
                 include_missed: bool = True) -> list[GroundTruth]:
    """Labels of the latest signed report version of each study, oldest signature first.

    Filters: the model that made the finding (missed findings match ``model_id`` when the
    reader chose one of that model's codes), and the signing time ``[signed_from,
    signed_to)`` of the version that holds the label.
    """
    newest = (select(Report.study_pk, func.max(Report.version).label("version"))
              .where(Report.status == ReportStatus.SIGNED.value).group_by(Report.study_pk)
              .subquery())
    conditions: list[ColumnElement[bool]] = []
    if model_id is not None:
        conditions.append(ReportVerdict.model_id == model_id)
    if model_version is not None:
        conditions.append(ReportVerdict.model_version == model_version)
    if signed_from is not None:
        conditions.append(Report.signed_at >= signed_from)
    if signed_to is not None:
        conditions.append(Report.signed_at < signed_to)
    if not include_missed:
        conditions.append(ReportVerdict.verdict != MISSED)
    rows = session.execute(
        select(ReportVerdict, Report, Study.study_instance_uid)
        .join(Report, Report.id == ReportVerdict.report_pk)
        .join(newest, (newest.c.study_pk == Report.study_pk) & (newest.c.version == Report.version))
        .join(Study, Study.id == Report.study_pk)
        .where(*conditions)
        .order_by(Report.signed_at, Report.id, ReportVerdict.id))
    out = []
    for rv, report, uid in rows:
        assert report.signed_at is not None and report.signed_by is not None
        out.append(GroundTruth(
            study_instance_uid=uid, report_id=report.id, report_version=report.version,
            reader=report.signed_by, signed_at=report.signed_at, finding_id=rv.finding_pk,
            verdict=rv.verdict, model_id=rv.model_id, model_version=rv.model_version,
            code_value=rv.code_value, code_scheme=rv.code_scheme, code_meaning=rv.code_meaning,
            probability=rv.probability, threshold=rv.threshold, ai_positive=rv.ai_positive))
    return out


@dataclass(frozen=True)
class ReaderVerdict:
    """A reader's current working verdict on an AI finding."""

    study_instance_uid: str
    finding_id: int
    reader: str
    verdict: VerdictValue
    model_id: str
    model_version: str
    code_value: str
    code_scheme: str
    probability: float
    threshold: float
    ai_positive: bool
    updated_at: datetime


def reader_verdicts(session: Session, *, model_id: str | None = None,
                    model_version: str | None = None, since: datetime | None = None,
                    study_pks: Sequence[int] | None = None) -> list[ReaderVerdict]:
    """Every reader's working verdicts (optionally of one model, updated since a time)."""
    conditions: list[ColumnElement[bool]] = []
    if model_id is not None:
        conditions.append(Finding.model_id == model_id)
    if model_version is not None:
        conditions.append(Finding.model_version == model_version)
    if since is not None:
        conditions.append(Verdict.updated_at >= since)
    if study_pks is not None:
        conditions.append(Verdict.study_pk.in_(list(study_pks)))
    rows = session.execute(
        select(Verdict, Finding, Study.study_instance_uid)
        .join(Finding, Finding.id == Verdict.finding_pk)
        .join(Study, Study.id == Verdict.study_pk)
        .where(*conditions).order_by(Verdict.updated_at, Verdict.id))
    return [ReaderVerdict(
        study_instance_uid=uid, finding_id=f.id, reader=v.reader, verdict=VerdictValue(v.verdict),
        model_id=f.model_id, model_version=f.model_version, code_value=f.code_value,
        code_scheme=f.code_scheme, probability=f.probability, threshold=f.threshold,
        ai_positive=f.positive, updated_at=v.updated_at) for v, f, uid in rows]
