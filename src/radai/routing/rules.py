"""Evaluating routing rules against the facts of a study (no database, no side effects).

:func:`evaluate` returns, for one rule, every check it made, attribute by attribute,
per series: the dry run prints them and the routing decision summarises them. Free-text
attributes (descriptions, institution) are compared but their values are never put
into an explanation, so explanations can be stored and logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from radai.routing.settings import Match, Rule


@dataclass(frozen=True)
class SeriesFacts:
    """What routing looks at in one series (from the archive index)."""

    series_pk: int
    series_instance_uid: str
    modality: str
    body_part_examined: str
    view_position: str
    series_description: str
    source_ae_title: str
    institution_name: str
    #: Instances that can be model inputs (results radai produced are not counted).
    input_instances: int


@dataclass(frozen=True)
class StudyFacts:
    """What routing looks at in one study."""

    study_pk: int
    study_instance_uid: str
    study_description: str
    series: tuple[SeriesFacts, ...]


@dataclass(frozen=True)
class Check:
    """One condition checked against one value."""

    #: DICOM keyword of the attribute (or ``CallingAETitle``).
    attribute: str
    #: The condition in words, e.g. ``one of CR, DX`` or ``matches /chest/``.
    condition: str
    ok: bool
    #: The value compared, for coded attributes only (None for free text).
    shown_value: str | None


@dataclass(frozen=True)
class SeriesEvaluation:
    """The series-level checks of a rule on one series."""

    series: SeriesFacts
    checks: tuple[Check, ...]

    @property
    def matched(self) -> bool:
        """Whether every series-level condition holds for this series."""
        return all(c.ok for c in self.checks)


@dataclass(frozen=True)
class RuleEvaluation:
    """A rule evaluated against a study."""

    rule: Rule
    study_checks: tuple[Check, ...]
    series: tuple[SeriesEvaluation, ...]

    @property
    def matched(self) -> bool:
        """Study conditions hold and at least one series meets every series condition."""
        return all(c.ok for c in self.study_checks) and any(s.matched for s in self.series)

    @property
    def matching_series(self) -> list[SeriesFacts]:
        """The series meeting every series-level condition."""
        return [s.series for s in self.series if s.matched]

    def why_not(self) -> str:
        """Why the rule did not match, in words without patient data."""
        for check in self.study_checks:
            if not check.ok:
                return f"{check.attribute} does not {_verb(check)}"
        if not self.series:
            return "the study has no series with images"
        missing = []
        for attribute, condition in _series_conditions(self.rule.match):
            if not any(c.ok for s in self.series for c in s.checks if c.attribute == attribute):
                missing.append(f"no series has {attribute} {condition}")
        if missing:
            return " and ".join(missing)
        return "no single series meets every condition"


def _verb(check: Check) -> str:
    if check.condition.startswith("matches "):
        return "match " + check.condition.removeprefix("matches ")
    return f"be {check.condition}"


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _one_of(values: list[str]) -> str:
    return "one of " + ", ".join(v if v else "(empty)" for v in values)


def _series_conditions(match: Match) -> list[tuple[str, str]]:
    out = []
    if match.modality:
        out.append(("Modality", _one_of(match.modality)))
    if match.body_part_examined:
        out.append(("BodyPartExamined", _one_of(match.body_part_examined)))
    if match.view_position:
        out.append(("ViewPosition", _one_of(match.view_position)))
    if match.calling_ae_title:
        out.append(("CallingAETitle", _one_of(match.calling_ae_title)))
    if match.series_description is not None:
        out.append(("SeriesDescription", f"matching /{match.series_description}/"))
    if match.institution_name is not None:
        out.append(("InstitutionName", f"matching /{match.institution_name}/"))
    return out


def _in(attribute: str, accepted: list[str], value: str, *, upper: bool = True) -> Check:
    v = value.strip().upper() if upper else value.strip()
    return Check(attribute, _one_of(accepted), v in accepted, v or "(empty)")


def _search(attribute: str, pattern: str, value: str) -> Check:
    return Check(attribute, f"matches /{pattern}/", _compiled(pattern).search(value) is not None, None)


def _series_checks(match: Match, s: SeriesFacts) -> tuple[Check, ...]:
    checks = []
    if match.modality:
        checks.append(_in("Modality", match.modality, s.modality))
    if match.body_part_examined:
        checks.append(_in("BodyPartExamined", match.body_part_examined, s.body_part_examined))
    if match.view_position:
        checks.append(_in("ViewPosition", match.view_position, s.view_position))
    if match.calling_ae_title:
        checks.append(_in("CallingAETitle", match.calling_ae_title, s.source_ae_title, upper=False))
    if match.series_description is not None:
        checks.append(_search("SeriesDescription", match.series_description, s.series_description))
    if match.institution_name is not None:
        checks.append(_search("InstitutionName", match.institution_name, s.institution_name))
    return tuple(checks)


def evaluate(rule: Rule, study: StudyFacts) -> RuleEvaluation:
    """Check ``rule`` against ``study``; series without input images are not considered."""
    study_checks: tuple[Check, ...] = ()
    if rule.match.study_description is not None:
        study_checks = (_search("StudyDescription", rule.match.study_description,
                                study.study_description),)
    series = tuple(SeriesEvaluation(s, _series_checks(rule.match, s))
                   for s in study.series if s.input_instances > 0)
    return RuleEvaluation(rule, study_checks, series)
