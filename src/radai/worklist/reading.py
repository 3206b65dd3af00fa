"""Views of one study for its reader: the study's entry, the reader's verdicts, reports, priors.

Priors are the same patient's earlier studies: the archive keeps one patient per Patient
ID and Issuer of Patient ID (radai.archive.models.Patient), so the studies of that
patient row are the patient's studies; a study without Patient ID has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from radai.archive.models import Patient, Study
from radai.inference.schemas import CodeOut
from radai.models.registry import ModelNotFound, ModelRegistry
from radai.worklist.models import Report, ReportStatus, StudyReading
from radai.worklist.queue import build_items
from radai.worklist.schemas import (
    AiResult,
    MissedFindingOut,
    PriorStudy,
    ReadingOut,
    ReportOut,
    VerdictOut,
    WorklistItem,
)
from radai.worklist.service import (
    editable,
    missed_of_reader,
    reading_status,
    reports_of,
    study_pk_of,
    verdicts_of_reader,
)
from radai.worklist.settings import WorklistSettings


def study_item(session: Session, *, study_pk: int, settings: WorklistSettings, now: datetime) -> WorklistItem:
    """The worklist entry of one study (whatever its reading state)."""
    row = session.execute(
        select(Study, Patient, StudyReading).join(Patient, Patient.id == Study.patient_pk)
        .outerjoin(StudyReading, StudyReading.study_pk == Study.id).where(Study.id == study_pk)).one()
    return build_items(session, [(row[0], row[1], row[2])], settings=settings, now=now)[0]


def report_out(report: Report) -> ReportOut:
    """The API view of a report version."""
    return ReportOut(
        id=report.id, version=report.version, status=ReportStatus(report.status), text=report.text,
        author=report.author, created_at=report.created_at, updated_at=report.updated_at,
        signed_by=report.signed_by, signed_at=report.signed_at, sop_instance_uid=report.sop_instance_uid,
        series_instance_uid=report.series_instance_uid,
        verdicts=[VerdictOut(finding_id=v.finding_pk, verdict=v.verdict, model_id=v.model_id,
                             model_version=v.model_version,
                             code=CodeOut(value=v.code_value, scheme=v.code_scheme, meaning=v.code_meaning),
                             probability=v.probability, threshold=v.threshold, ai_positive=v.ai_positive)
                  for v in report.verdicts])


def _earlier(a: Study, b: Study) -> bool:
    """Whether ``a`` was done before ``b`` (Study Date and Time; arrival when they are missing)."""
    if a.study_date and b.study_date and (a.study_date, a.study_time) != (b.study_date, b.study_time):
        return (a.study_date, a.study_time) < (b.study_date, b.study_time)
    return a.first_received_at < b.first_received_at


def priors(session: Session, *, study_pk: int, settings: WorklistSettings, now: datetime) -> list[PriorStudy]:
    """The same patient's earlier studies, newest first, with AI results and reports."""
    study = session.get(Study, study_pk)
    if study is None:
        return []
    patient = session.get(Patient, study.patient_pk)
    if patient is None or not patient.patient_id:
        return []
    rows = [(s, p, r) for s, p, r in session.execute(
        select(Study, Patient, StudyReading).join(Patient, Patient.id == Study.patient_pk)
        .outerjoin(StudyReading, StudyReading.study_pk == Study.id)
        .where(Study.patient_pk == patient.id, Study.id != study_pk)) if _earlier(s, study)]
    rows.sort(key=lambda row: (row[0].study_date, row[0].study_time, row[0].first_received_at), reverse=True)
    items = build_items(session, rows, settings=settings, now=now)
    out = []
    for (prior, _patient, _reading), item in zip(rows, items, strict=True):
        signed = [r for r in reports_of(session, study_pk=prior.id) if r.status == ReportStatus.SIGNED.value]
        out.append(PriorStudy(
            study_instance_uid=item.study_instance_uid, study_date=item.study_date,
            study_description=item.study_description, modalities=item.modalities,
            ai_result=AiResult(item.ai_result), positive_findings=[f for f in item.findings if f.positive],
            status=item.status, report_text=signed[-1].text if signed else None,
            report_signed_at=signed[-1].signed_at if signed else None))
    return out


def reading_view(session: Session, *, study_instance_uid: str, reader: str, settings: WorklistSettings,
                 now: datetime) -> ReadingOut:
    """The study's reading for ``reader``; StudyNotFound when it is not archived."""
    pk = study_pk_of(session, study_instance_uid=study_instance_uid)
    return ReadingOut(
        study_instance_uid=study_instance_uid, status=reading_status(session, study_pk=pk),
        editable=editable(session, study_pk=pk),
        my_verdicts=verdicts_of_reader(session, study_pk=pk, reader=reader),
        my_missed_findings=[MissedFindingOut(id=m.id, model_id=m.model_id, code=CodeOut(
            value=m.code_value, scheme=m.code_scheme, meaning=m.code_meaning))
            for m in missed_of_reader(session, study_pk=pk, reader=reader)],
        reports=[report_out(r) for r in reports_of(session, study_pk=pk)],
        priors=priors(session, study_pk=pk, settings=settings, now=now))


@dataclass(frozen=True)
class ModelNote:
    """What the findings panel says about the model that made a finding (its manifest)."""

    model_id: str
    version: str
    name: str
    vendor: str
    licence: str
    intended_use: str


@dataclass(frozen=True)
class CodeChoice:
    """A finding code a reader may pick as missed: one of a model's manifest findings."""

    model_id: str
    value: str
    scheme: str
    meaning: str

    @property
    def key(self) -> str:
        """How a form names the choice: ``model|scheme|value``."""
        return f"{self.model_id}|{self.scheme}|{self.value}"


def model_notes(registry: ModelRegistry, refs: set[tuple[str, str]]) -> dict[tuple[str, str], ModelNote]:
    """Manifest notes of the model versions that made a study's findings."""
    notes = {}
    for model_id, version in sorted(refs):
        try:
            m = registry.get(model_id, version).manifest
        except ModelNotFound:
            continue
        notes[(model_id, version)] = ModelNote(model_id=m.id, version=m.version, name=m.name,
                                               vendor=m.vendor, licence=m.licence,
                                               intended_use=m.intended_use)
    return notes


def code_choices(registry: ModelRegistry, model_ids: set[str]) -> list[CodeChoice]:
    """Finding codes of these models' newest versions, and of every live model."""
    ids = set(model_ids) | {r.model_id for r in registry.live()}
    out: dict[str, CodeChoice] = {}
    for model_id in sorted(ids):
        try:
            manifest = registry.get(model_id).manifest
        except ModelNotFound:
            continue
        for f in manifest.outputs.findings:
            choice = CodeChoice(model_id, f.code.value, f.code.scheme, f.code.meaning)
            out.setdefault(choice.key, choice)
    return list(out.values())
