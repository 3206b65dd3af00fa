"""The priority of a study on the worklist: an explicit, monotone, explainable sum.

::

    priority = finding points + emergency points + waiting points

    finding points   = urgency_points[u]       for the most urgent *positive* AI finding
                                               (u = routine | urgent | critical), else 0
    emergency points = emergency_points        when the study matches an emergency rule, else 0
    waiting points   = waiting_points_at_sla × min(waited / SLA, waiting_cap_slas)

With the default settings (:class:`radai.worklist.settings.WorklistSettings`): routine
100, urgent 200, critical 400, emergency 300, 100 points at the SLA, capped at 1.5 SLAs
(150 points). So:

- a critical positive (400) outranks an urgent one (200), which outranks a routine one (100);
- a clinical emergency (300) outranks an urgent AI finding but not a critical one;
- **normal studies never starve**: a study with no positive finding gains points as it
  waits, and once it has waited past its SLA (more than 100 points) it overtakes a
  *fresh* routine positive study (100 points);
- **the cap** stops waiting from growing without bound (150 points at most): however long
  a normal study has waited, a fresh urgent (200) or critical (400) positive study, or an
  emergency, still comes first. Studies that wait together keep their order by urgency.

Every term is non-decreasing in its input (urgency, emergency, waiting time), so the
order is monotone: raising any input never moves a study down. Ties go to the study that
arrived first. :class:`Priority` carries each term with a sentence saying why, which the
worklist shows next to the study.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from radai.worklist.settings import URGENCIES, WorklistSettings


@dataclass(frozen=True)
class PriorityPart:
    """One term of a study's priority."""

    #: ``finding``, ``emergency`` or ``waiting``.
    kind: str
    points: float
    #: Why, in words without patient data.
    why: str


@dataclass(frozen=True)
class Priority:
    """A study's priority and how it is made up."""

    score: float
    parts: tuple[PriorityPart, ...]
    waited_minutes: float
    sla_minutes: float

    @property
    def overdue(self) -> bool:
        """Whether the study has waited longer than its SLA."""
        return self.waited_minutes > self.sla_minutes

    def explain(self) -> str:
        """The priority in one line, each term's points before the reason for them, e.g.
        ``200 = 200 for an urgent positive AI finding (pneumonia) + 0 for waiting 5 min of a 4 h 00 min SLA``.
        """
        terms = " + ".join(f"{p.points:.0f} for {_article(p.why)}" for p in self.parts) or "nothing yet"
        return f"{self.score:.0f} = {terms}"


def _article(why: str) -> str:
    # "200 for urgent positive AI finding" reads as a list of codes; "for an urgent …" as a sentence.
    if why.startswith(("routine ", "urgent ", "critical ", "clinical ")):
        return ("an " if why[0] in "aeiou" else "a ") + why
    return why


def most_urgent(urgencies: list[str]) -> str | None:
    """The most urgent of the urgencies of a study's positive findings (None if there are none).

    An urgency this version does not know counts as routine.
    """
    known = [URGENCIES.index(u) if u in URGENCIES else 0 for u in urgencies]
    return URGENCIES[max(known)] if known else None


def duration_words(minutes: float) -> str:
    """``3 d 4 h``, ``2 h 05 min`` or ``12 min``."""
    total = max(0, int(minutes))
    days, rest = divmod(total, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins:02d} min"
    return f"{mins} min"


def priority(*, urgency: str | None, finding_label: str | None, emergency_rule: str | None,
             waited: timedelta, sla_minutes: float, settings: WorklistSettings) -> Priority:
    """The priority of one study (see the module docstring for the formula).

    ``urgency``/``finding_label`` describe the study's most urgent positive AI finding
    (None when there is none); ``emergency_rule`` names the emergency rule it matched.
    """
    if sla_minutes <= 0:
        raise ValueError("sla_minutes must be more than 0")
    parts = []
    if urgency is not None:
        points = settings.urgency_points.get(urgency, settings.urgency_points["routine"])
        label = f" ({finding_label})" if finding_label else ""
        parts.append(PriorityPart("finding", points, f"{urgency} positive AI finding{label}"))
    if emergency_rule is not None:
        parts.append(PriorityPart("emergency", settings.emergency_points,
                                  f"clinical emergency (rule {emergency_rule})"))
    waited_minutes = max(0.0, waited.total_seconds() / 60.0)
    slas = waited_minutes / sla_minutes
    capped = min(slas, settings.waiting_cap_slas)
    why = f"waiting {duration_words(waited_minutes)} of a {duration_words(sla_minutes)} SLA"
    if slas >= settings.waiting_cap_slas:
        why += f" (capped at {settings.waiting_cap_slas:g} SLAs)"
    parts.append(PriorityPart("waiting", round(settings.waiting_points_at_sla * capped, 1), why))
    score = round(sum(p.points for p in parts), 1)
    return Priority(score=score, parts=tuple(parts), waited_minutes=waited_minutes,
                    sla_minutes=sla_minutes)
