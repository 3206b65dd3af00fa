"""The worklist: studies with their AI results, reading state and priority, filtered and paged.

Every study in the archive is on the worklist until its report is signed, whatever the
AI made of it: studies with positive or negative findings, with a technical defect,
still waiting for a model, or never routed (no rule matched, or only result objects).

Filters that the index can answer (reading status, modality, institution, search) run
in SQL; the priority depends on the time of the request, so it is computed here for the
matching studies (:mod:`radai.worklist.priority`) and the page is cut after sorting.
The studies still to read are the backlog of a service, not its history: signed studies
are only listed when asked for, newest signature first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, exists, false, func, or_, select
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Patient, Series, Study
from radai.db import utcnow
from radai.inference.models import FINAL, Finding, InferenceTask, TaskPurpose, TaskState
from radai.inference.schemas import CodeOut
from radai.routing.models import RoutingDecision
from radai.routing.rules import SeriesFacts, StudyFacts, evaluate
from radai.routing.service import RESULT_SOURCE
from radai.routing.settings import ModelRef, Rule
from radai.worklist.models import ReadingStatus, StudyReading
from radai.worklist.priority import most_urgent, priority
from radai.worklist.schemas import (
    AiResult,
    DefectBadge,
    FindingBadge,
    PriorityPartOut,
    WorklistItem,
    WorklistPage,
)
from radai.worklist.settings import URGENCIES, EmergencyRule, WorklistSettings

#: Studies looked up per query (well under SQLite's bound-parameter limit).
_CHUNK = 500
#: Statuses listed when no status is asked for: the studies still to be read.
OPEN_STATUSES = (ReadingStatus.UNREAD, ReadingStatus.IN_REVIEW)


@dataclass(frozen=True)
class WorklistFilter:
    """What the reader asked to see."""

    modality: str | None = None
    institution: str | None = None
    statuses: tuple[ReadingStatus, ...] = OPEN_STATUSES
    ai_result: AiResult | None = None
    #: Words of the patient's name, or the start of the Patient ID or Accession Number.
    search: str | None = None


@dataclass
class _Facts:
    """What the worklist needs of one study besides its index row."""

    series: list[SeriesFacts] = field(default_factory=list)
    tasks: list[InferenceTask] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    last_outcome: str | None = None


def _chunks(values: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, len(values), _CHUNK):
        yield list(values[i:i + _CHUNK])


def _like(text: str) -> str:
    """``text`` as a LIKE pattern fragment, wildcards escaped (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search_condition(text: str) -> ColumnElement[bool]:
    words = [w for w in text.replace("^", " ").split() if w]
    if not words:
        return false()
    name = and_(*(func.lower(Patient.patient_name).like(f"%{_like(w.lower())}%", escape="\\")
                  for w in words))
    term = _like(text.strip())
    return or_(name, Patient.patient_id.like(f"{term}%", escape="\\"),
               Study.accession_number.like(f"{term}%", escape="\\"))


def _status_condition(statuses: Iterable[ReadingStatus]) -> ColumnElement[bool]:
    wanted = [ReadingStatus(s).value for s in statuses]
    condition: ColumnElement[bool] = StudyReading.status.in_(wanted)
    if ReadingStatus.UNREAD.value in wanted:
        condition = or_(StudyReading.id.is_(None), condition)
    return condition


Row = tuple[Study, Patient, StudyReading | None]


def candidate_rows(session: Session, filters: WorklistFilter) -> list[Row]:
    """Studies matching the filters the index can answer."""
    q = (select(Study, Patient, StudyReading).join(Patient, Patient.id == Study.patient_pk)
         .outerjoin(StudyReading, StudyReading.study_pk == Study.id)
         .where(_status_condition(filters.statuses)))
    if filters.modality:
        q = q.where(exists().where(Series.study_pk == Study.id,
                                   func.upper(Series.modality) == filters.modality.strip().upper()))
    if filters.institution:
        q = q.where(exists().where(Series.study_pk == Study.id,
                                   Series.institution_name == filters.institution.strip()))
    if filters.search and filters.search.strip():
        q = q.where(_search_condition(filters.search))
    return [(s, p, r) for s, p, r in session.execute(q)]


def _facts(session: Session, study_pks: Sequence[int]) -> dict[int, _Facts]:
    facts: dict[int, _Facts] = defaultdict(_Facts)
    inputs = func.sum(case((Instance.source != RESULT_SOURCE, 1), else_=0))
    for chunk in _chunks(study_pks):
        for s, n in session.execute(
                select(Series, inputs).outerjoin(Instance, Instance.series_pk == Series.id)
                .where(Series.study_pk.in_(chunk)).group_by(Series.id)
                .order_by(Series.series_number, Series.id)):
            facts[s.study_pk].series.append(SeriesFacts(
                series_pk=s.id, series_instance_uid=s.series_instance_uid, modality=s.modality,
                body_part_examined=s.body_part_examined, view_position=s.view_position,
                series_description=s.series_description, source_ae_title=s.source_ae_title,
                institution_name=s.institution_name, input_instances=int(n or 0)))
        latest: dict[tuple[int, str], InferenceTask] = {}
        for task in session.scalars(select(InferenceTask).where(
                InferenceTask.study_pk.in_(chunk), InferenceTask.purpose == TaskPurpose.CLINICAL.value)):
            # A model's latest run (the study's latest change) replaces its earlier ones.
            key = (task.study_pk, task.model_id)
            if key not in latest or (task.change_seq, task.id) > (latest[key].change_seq, latest[key].id):
                latest[key] = task
        for task in latest.values():
            facts[task.study_pk].tasks.append(task)
        done = [t.id for t in latest.values() if t.state == TaskState.DONE.value]
        for task_chunk in _chunks(done):
            for f in session.scalars(select(Finding).where(Finding.task_pk.in_(task_chunk))
                                     .order_by(Finding.id)):
                facts[f.study_pk].findings.append(f)
        for pk, outcome in session.execute(
                select(RoutingDecision.study_pk, RoutingDecision.outcome)
                .where(RoutingDecision.study_pk.in_(chunk)).order_by(RoutingDecision.change_seq)):
            facts[pk].last_outcome = outcome
    return facts


def ai_result(study: Study, facts: _Facts) -> AiResult:
    """The study's AI result (see :class:`radai.worklist.schemas.AiResult`)."""
    if any(f.positive for f in facts.findings):
        return AiResult.POSITIVE
    if any(t.state not in FINAL for t in facts.tasks):
        return AiResult.PENDING
    if any(t.state == TaskState.DEFECT.value for t in facts.tasks):
        return AiResult.DEFECT
    if facts.tasks:
        return AiResult.NEGATIVE
    if facts.last_outcome is not None or study.stable_seq >= study.change_seq:
        return AiResult.NOT_ROUTED
    # Not stable yet: routing has still to look at the study.
    return AiResult.PENDING


def _as_rule(rule: EmergencyRule) -> Rule:
    # evaluate() reads only a rule's conditions; the model is a placeholder it never uses.
    return Rule(name=rule.name, match=rule.match, models=[ModelRef(id="worklist-emergency")])


def emergency_of(study: Study, facts: _Facts, rules: Sequence[Rule]) -> str | None:
    """The name of the first emergency rule the study matches."""
    study_facts = StudyFacts(study.id, study.study_instance_uid, study.study_description,
                             tuple(facts.series))
    for rule in rules:
        if evaluate(rule, study_facts).matched:
            return rule.name
    return None


def _finding_badge(f: Finding) -> FindingBadge:
    return FindingBadge(id=f.id, model_id=f.model_id, model_version=f.model_version,
                        code=CodeOut(value=f.code_value, scheme=f.code_scheme, meaning=f.code_meaning),
                        label=f.label, probability=f.probability, threshold=f.threshold,
                        positive=f.positive, urgency=f.urgency)


def _modalities(facts: _Facts) -> list[str]:
    inputs = sorted({s.modality for s in facts.series if s.input_instances > 0 and s.modality})
    return inputs or sorted({s.modality for s in facts.series if s.modality})


def build_items(session: Session, rows: Sequence[Row], *,
                settings: WorklistSettings, now: datetime) -> list[WorklistItem]:
    """Worklist entries of these studies (in the order given)."""
    facts = _facts(session, [s.id for s, _p, _r in rows])
    rules = [_as_rule(r) for r in settings.emergency_rules if r.enabled]
    items = []
    for study, patient, reading in rows:
        f = facts[study.id]
        modalities = _modalities(f)
        positives = sorted((x for x in f.findings if x.positive),
                           key=lambda x: (-_urgency_rank(x.urgency), -x.probability))
        urgency = most_urgent([x.urgency for x in positives])
        emergency = emergency_of(study, f, rules)
        sla = settings.sla_for(modalities)
        prio = priority(urgency=urgency, finding_label=positives[0].label if positives else None,
                        emergency_rule=emergency, waited=now - study.first_received_at,
                        sla_minutes=sla, settings=settings)
        status = ReadingStatus(reading.status) if reading else ReadingStatus.UNREAD
        items.append(WorklistItem(
            study_instance_uid=study.study_instance_uid, patient_name=patient.patient_name,
            patient_id=patient.patient_id, issuer_of_patient_id=patient.issuer_of_patient_id,
            patient_sex=patient.patient_sex, patient_birth_date=patient.patient_birth_date,
            accession_number=study.accession_number, study_date=study.study_date,
            study_time=study.study_time, study_description=study.study_description,
            modalities=modalities,
            institution=next((s.institution_name for s in f.series if s.institution_name), ""),
            number_of_instances=study.number_of_instances, received_at=study.first_received_at,
            status=status, opened_by=reading.opened_by if reading else None,
            signed_by=reading.signed_by if reading else None,
            signed_at=reading.signed_at if reading else None,
            ai_result=ai_result(study, f),
            findings=[_finding_badge(x) for x in positives]
            + [_finding_badge(x) for x in f.findings if not x.positive],
            defects=[DefectBadge(model_id=t.model_id, model_version=t.model_version,
                                 category=t.defect_category or "", reason=t.reason)
                     for t in f.tasks if t.state == TaskState.DEFECT.value],
            pending_models=sorted(f"{t.model_id}@{t.model_version}" for t in f.tasks
                                  if t.state not in FINAL),
            emergency=emergency, priority=prio.score,
            priority_parts=[PriorityPartOut(kind=p.kind, points=p.points, why=p.why) for p in prio.parts],
            priority_explanation=prio.explain(), waited_minutes=round(prio.waited_minutes, 1),
            sla_minutes=sla, overdue=prio.overdue))
    return items


def _urgency_rank(urgency: str) -> int:
    return URGENCIES.index(urgency) if urgency in URGENCIES else 0


def _order(item: WorklistItem) -> tuple[int, float, float, str]:
    if item.status is ReadingStatus.SIGNED:
        # Signed studies (only listed when asked for) last, newest signature first.
        signed = item.signed_at.timestamp() if item.signed_at else 0.0
        return (1, -signed, 0.0, item.study_instance_uid)
    return (0, -item.priority, item.received_at.timestamp(), item.study_instance_uid)


def worklist_page(session: Session, *, settings: WorklistSettings, filters: WorklistFilter,
                  limit: int, offset: int = 0, now: datetime | None = None) -> WorklistPage:
    """One page of the worklist, most urgent first (see the module docstring)."""
    now = now or utcnow()
    items = build_items(session, candidate_rows(session, filters), settings=settings, now=now)
    if filters.ai_result is not None:
        items = [i for i in items if i.ai_result is filters.ai_result]
    items.sort(key=_order)
    return WorklistPage(items=items[offset:offset + limit], total=len(items), limit=limit,
                        offset=offset, computed_at=now)


def institution_choices(session: Session) -> list[str]:
    """Institution names of the archive's series, for the worklist's filter."""
    return [n for n in session.scalars(select(Series.institution_name).distinct()
                                       .order_by(Series.institution_name)) if n]


def modality_choices(session: Session) -> list[str]:
    """Modalities of the archive's series, for the worklist's filter."""
    return [m for m in session.scalars(select(Series.modality).distinct().order_by(Series.modality)) if m]
