"""``radai route --dry-run STUDY_UID``: which models a study would go to, and why.

Prints every rule, every series and every condition with its outcome. Coded values
(Modality, Body Part Examined, View Position, calling AE title) are shown; free-text
attributes (descriptions, institution) are compared but not printed. Nothing is
written: no task, no decision.
"""

from __future__ import annotations

import click

from radai.config import ConfigError, Settings
from radai.logs import uid_ref
from radai.routing.rules import Check, RuleEvaluation
from radai.routing.service import RoutingPlan, StudyNotFound, find_study, plan_routing, study_facts


def run_dry_run(settings: Settings, study_instance_uid: str) -> int:
    """Print the routing plan of a stored study; returns the exit status."""
    from radai.app import Radai
    from radai.routing.listener import checked_rules

    radai = Radai(settings)
    try:
        radai.prepare()
        try:
            rules = checked_rules(settings.routing, radai.models)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        with radai.db.session() as s:
            try:
                facts = study_facts(s, study_pk=find_study(s, study_instance_uid=study_instance_uid))
            except StudyNotFound:
                raise click.ClickException("the study is not in the archive") from None
        plan = plan_routing(facts, rules=rules, registry=radai.models)
        for line in format_plan(plan, using_defaults=settings.routing.using_defaults):
            click.echo(line)
    finally:
        radai.stop()
    return 0


def _check(check: Check) -> str:
    value = check.shown_value if check.shown_value is not None else "(free text, not shown)"
    return f"    {check.attribute}: {value} — {check.condition}: {'yes' if check.ok else 'no'}"


def _rule_lines(ev: RuleEvaluation, plan: RoutingPlan) -> list[str]:
    rule = ev.rule
    verdict = "matches" if ev.matched else f"does not match — {ev.why_not()}"
    lines = [f"rule {rule.name} (per {rule.per}): {verdict}"]
    lines.extend(_check(c) for c in ev.study_checks)
    for se in ev.series:
        s = se.series
        head = (f"  series {s.modality or '(no modality)'}, {s.input_instances} image(s), "
                f"ref {uid_ref(s.series_instance_uid)}: {'meets' if se.matched else 'fails'}")
        lines.append(head)
        lines.extend(_check(c) for c in se.checks)
        if not se.checks:
            lines.append("    (no series condition)")
    for choice in plan.choices.get(rule.name, []):
        if choice.records:
            refs = ", ".join(f"{r.ref} (live)" for r in choice.records)
            lines.append(f"  model {choice.ref.ref} → {refs}")
        else:
            lines.append(f"  model {choice.ref.ref}: {choice.note} — not used")
    return lines


def format_plan(plan: RoutingPlan, *, using_defaults: bool = False) -> list[str]:
    """The dry-run report, line by line."""
    facts = plan.study
    with_images = sum(1 for s in facts.series if s.input_instances)
    lines = [f"study ref {uid_ref(facts.study_instance_uid)}: {with_images} series with images, "
             f"{plan.input_instances} image(s)",
             f"{len(plan.evaluations)} rule(s){' (embedded defaults)' if using_defaults else ''}", ""]
    for ev in plan.evaluations:
        lines.extend(_rule_lines(ev, plan))
    lines.append("")
    if plan.targets:
        lines.append("would go to:")
        for t in plan.targets:
            where = (f"series ref {uid_ref(t.series.series_instance_uid)}" if t.series is not None
                     else "the study")
            lines.append(f"  {t.record.ref} for {where} (rule {t.rule})")
    else:
        lines.append(f"would not be routed: {plan.reason()}")
    return lines
