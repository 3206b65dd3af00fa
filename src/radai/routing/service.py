"""Routing a stable study: rules → models → tasks, and the decision recorded with its reason.

:func:`plan_routing` works out, without writing anything, which (target, model version)
pairs a study goes to and why; :func:`route_study` applies a plan inside the stability
transaction: it creates the tasks (idempotent) and one :class:`RoutingDecision` row per
study change. Only LIVE model versions receive clinical studies.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Series, Study
from radai.db import utcnow
from radai.inference.service import create_task
from radai.logs import uid_ref
from radai.models.manifest import LifecycleState
from radai.models.registry import ModelNotFound, ModelRecord, ModelRegistry
from radai.routing.models import RoutingDecision, RoutingOutcome
from radai.routing.rules import RuleEvaluation, SeriesFacts, StudyFacts, evaluate
from radai.routing.settings import ModelRef, Rule

log = logging.getLogger(__name__)

#: Instances radai made itself (result objects) are never routing inputs.
RESULT_SOURCE = "result"


class StudyNotFound(LookupError):
    """The study is not in the archive."""


def study_facts(session: Session, *, study_pk: int) -> StudyFacts:
    """What routing looks at in a study, from the archive index."""
    study = session.get(Study, study_pk)
    if study is None:
        raise StudyNotFound(f"no study with key {study_pk}")
    inputs = func.sum(case((Instance.source != RESULT_SOURCE, 1), else_=0))
    rows = session.execute(
        select(Series, inputs).outerjoin(Instance, Instance.series_pk == Series.id)
        .where(Series.study_pk == study_pk).group_by(Series.id)
        .order_by(Series.series_number, Series.id)).all()
    series = tuple(SeriesFacts(
        series_pk=s.id, series_instance_uid=s.series_instance_uid, modality=s.modality,
        body_part_examined=s.body_part_examined, view_position=s.view_position,
        series_description=s.series_description, source_ae_title=s.source_ae_title,
        institution_name=s.institution_name, input_instances=int(n or 0)) for s, n in rows)
    return StudyFacts(study.id, study.study_instance_uid, study.study_description, series)


def find_study(session: Session, *, study_instance_uid: str) -> int:
    """The index key of a study; StudyNotFound if it is not archived."""
    pk = session.scalar(select(Study.id).where(Study.study_instance_uid == study_instance_uid))
    if pk is None:
        raise StudyNotFound("the study is not in the archive")
    return pk


@dataclass(frozen=True)
class ModelChoice:
    """What became of one model a matching rule names."""

    ref: ModelRef
    #: The live versions the study goes to (empty when none).
    records: tuple[ModelRecord, ...]
    #: Why not, when ``records`` is empty (e.g. "not registered", "draft, not live").
    note: str = ""


@dataclass(frozen=True)
class Target:
    """One task to create."""

    rule: str
    series: SeriesFacts | None
    record: ModelRecord


@dataclass
class RoutingPlan:
    """Which models a study goes to, and why: rule by rule, attribute by attribute."""

    study: StudyFacts
    evaluations: list[RuleEvaluation]
    choices: dict[str, list[ModelChoice]] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)

    @property
    def input_instances(self) -> int:
        """Input images of the study."""
        return sum(s.input_instances for s in self.study.series)

    @property
    def outcome(self) -> RoutingOutcome:
        """Routed when at least one task results."""
        return RoutingOutcome.ROUTED if self.targets else RoutingOutcome.NOT_ROUTED

    def matched_rules(self) -> list[str]:
        """Names of the rules that matched."""
        return [e.rule.name for e in self.evaluations if e.matched]

    def model_refs(self) -> list[str]:
        """``id@version`` of every model the study goes to, in order, once each."""
        return list(dict.fromkeys(t.record.ref for t in self.targets))

    def reason(self) -> str:
        """Rule by rule, why the study was (not) routed; no values from the study."""
        if not self.evaluations:
            return "no routing rule is configured"
        parts = []
        for ev in self.evaluations:
            name = ev.rule.name
            if not ev.matched:
                parts.append(f"{name}: {ev.why_not()}")
                continue
            for choice in self.choices.get(name, []):
                if choice.records:
                    refs = ", ".join(r.ref for r in choice.records)
                    per = f"{len(ev.matching_series)} series" if ev.rule.per == "series" else "study"
                    parts.append(f"{name}: matched → {refs} (per {per})")
                else:
                    parts.append(f"{name}: matched, but model {choice.ref.ref} is {choice.note}")
        prefix = "" if self.targets else ("no rule matched; " if not self.matched_rules() else "")
        return prefix + "; ".join(parts)


def _choose(ref: ModelRef, live: Sequence[ModelRecord], registry: ModelRegistry) -> ModelChoice:
    records = tuple(r for r in live if r.model_id == ref.id
                    and (ref.version is None or r.version == ref.version))
    if records:
        return ModelChoice(ref, records)
    try:
        record = registry.get(ref.id, ref.version)
    except ModelNotFound:
        return ModelChoice(ref, (), "not registered")
    if ref.version is None:
        return ModelChoice(ref, (), "registered, but no version of it is live")
    return ModelChoice(ref, (), f"{record.state.value}, not live")


def plan_routing(facts: StudyFacts, *, rules: Sequence[Rule], registry: ModelRegistry,
                 live: Sequence[ModelRecord] | None = None) -> RoutingPlan:
    """Evaluate every rule against a study and choose the live model versions."""
    live = registry.live() if live is None else live
    live = [r for r in live if r.state == LifecycleState.LIVE]
    plan = RoutingPlan(facts, [evaluate(rule, facts) for rule in rules])
    seen: set[tuple[int | None, str, str]] = set()
    for ev in plan.evaluations:
        if not ev.matched:
            continue
        choices = [_choose(ref, live, registry) for ref in ev.rule.models]
        plan.choices[ev.rule.name] = choices
        targets: list[SeriesFacts | None] = (list(ev.matching_series) if ev.rule.per == "series"
                                             else [None])
        for choice in choices:
            for record in choice.records:
                for series in targets:
                    key = (series.series_pk if series else None, record.model_id, record.version)
                    if key not in seen:
                        seen.add(key)
                        plan.targets.append(Target(ev.rule.name, series, record))
    return plan


def last_decision(session: Session, *, study_pk: int) -> RoutingDecision | None:
    """The latest routing decision of a study."""
    return session.scalar(select(RoutingDecision).where(RoutingDecision.study_pk == study_pk)
                          .order_by(RoutingDecision.change_seq.desc()).limit(1))


def route_study(session: Session, *, study_pk: int, change_seq: int, rules: Sequence[Rule],
                registry: ModelRegistry) -> RoutingDecision:
    """Route one change of a study inside the caller's (stability) transaction.

    Creates one task per (target, live model version) and records the decision. A change
    that added no input image (only results radai made) is recorded as ``no_new_input``
    and routes nothing, so results never route their own study again.
    """
    existing = session.scalar(select(RoutingDecision).where(RoutingDecision.study_pk == study_pk,
                                                            RoutingDecision.change_seq == change_seq))
    if existing is not None:
        return existing
    facts = study_facts(session, study_pk=study_pk)
    inputs = sum(s.input_instances for s in facts.series)
    previous = last_decision(session, study_pk=study_pk)
    if previous is not None and previous.input_instances == inputs:
        decision = RoutingDecision(
            study_pk=study_pk, change_seq=change_seq, outcome=RoutingOutcome.NO_NEW_INPUT.value,
            input_instances=inputs, task_count=0, rules="", models="",
            reason=f"no new input image since change {previous.change_seq}", decided_at=utcnow())
        session.add(decision)
        session.flush()
        return decision
    plan = plan_routing(facts, rules=rules, registry=registry)
    created = 0
    for target in plan.targets:
        resources = target.record.manifest.resources
        task_id = create_task(
            session, study_pk=study_pk, study_instance_uid=facts.study_instance_uid,
            series_pk=target.series.series_pk if target.series else None,
            series_instance_uid=target.series.series_instance_uid if target.series else None,
            model_id=target.record.model_id, model_version=target.record.version,
            rule=target.rule, change_seq=change_seq, max_attempts=resources.max_retries + 1)
        created += task_id is not None
    decision = RoutingDecision(
        study_pk=study_pk, change_seq=change_seq, outcome=plan.outcome.value,
        input_instances=inputs, task_count=created, rules=", ".join(plan.matched_rules()),
        models=", ".join(plan.model_refs()), reason=plan.reason(), decided_at=utcnow())
    session.add(decision)
    session.flush()
    log.info("study %s change %d: %s to %s", uid_ref(facts.study_instance_uid), change_seq,
             plan.outcome.value, decision.models or "no model")
    return decision


def decisions_for_study(session: Session, *, study_pk: int) -> list[RoutingDecision]:
    """Every routing decision of a study, oldest first."""
    return list(session.scalars(select(RoutingDecision).where(RoutingDecision.study_pk == study_pk)
                                .order_by(RoutingDecision.change_seq)))
