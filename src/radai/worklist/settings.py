"""Settings of the worklist (``[worklist]`` in radai.toml, ``RADAI_WORKLIST__*``).

The priority formula they feed is :mod:`radai.worklist.priority`. Clinical urgency is
declared by *emergency rules*: each names DICOM attributes a study must match (the
conditions of routing rules, radai.routing.settings.Match: Modality, calling AE title,
Study Description and Institution Name patterns, …); a study that matches any enabled
rule is an emergency. Senders flag emergencies by the AE title they call from (an
emergency department's modality) or by what they write in Study Description (e.g.
``STAT``/``URGENT``), for example::

    [[worklist.emergency_rules]]
    name = "emergency-department"
    [worklist.emergency_rules.match]
    calling_ae_title = ["ED_CR1", "ED_CT1"]

    [[worklist.emergency_rules]]
    name = "stat-orders"
    [worklist.emergency_rules.match]
    study_description = "\\\\b(STAT|URGENT|EMERG)"
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from radai.routing.settings import REGEX_FIELDS, Match

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Urgencies of AI findings (model manifests), least urgent first.
URGENCIES = ("routine", "urgent", "critical")


class EmergencyRule(BaseModel):
    """Studies matching ``match`` are clinical emergencies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    match: Match
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be 1-64 letters, digits, '.', '-' or '_', starting with a letter or digit")
        return v

    @model_validator(mode="after")
    def _conditions(self) -> EmergencyRule:
        if self.match == Match():
            raise ValueError(f"emergency rule {self.name!r} has no condition (it would match every study)")
        for field in REGEX_FIELDS:
            pattern = getattr(self.match, field)
            if pattern is None:
                continue
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"emergency rule {self.name!r}: match.{field} is not a valid "
                                 f"regular expression ({exc})") from None
        return self


def _default_sla() -> dict[str, float]:
    # Minutes to report, by modality: cross-sectional imaging is read sooner.
    return {"CR": 240.0, "DX": 240.0, "CT": 60.0, "MR": 240.0, "US": 120.0, "MG": 1440.0}


class WorklistSettings(BaseModel):
    """Priority weights, SLAs, emergency rules and paging of the worklist."""

    model_config = ConfigDict(extra="forbid")

    #: Minutes within which a study of each modality should be read (its SLA).
    sla_minutes: dict[str, float] = Field(default_factory=_default_sla)
    #: SLA of modalities not listed above.
    default_sla_minutes: float = Field(default=240.0, gt=0, le=525_600)
    #: Points of a study's most urgent positive AI finding, by the finding's urgency.
    urgency_points: dict[str, float] = Field(
        default_factory=lambda: {"routine": 100.0, "urgent": 200.0, "critical": 400.0})
    #: Points of a clinical emergency (a study matching an emergency rule).
    emergency_points: float = Field(default=300.0, ge=0)
    #: Points a study has earned by waiting when it reaches its SLA (they grow linearly
    #: with waiting time from 0 at arrival).
    waiting_points_at_sla: float = Field(default=100.0, ge=0)
    #: Waiting stops earning points at this many SLAs (the cap).
    waiting_cap_slas: float = Field(default=1.5, gt=0, le=100)
    emergency_rules: list[EmergencyRule] = Field(default_factory=list)
    #: How often the worklist page refreshes itself (htmx polling).
    refresh_seconds: int = Field(default=15, ge=2, le=3600)
    #: Rows per worklist page.
    page_size: int = Field(default=50, ge=1, le=500)

    @field_validator("sla_minutes")
    @classmethod
    def _slas(cls, values: dict[str, float]) -> dict[str, float]:
        out = {}
        for modality, minutes in values.items():
            if not 0 < minutes <= 525_600:
                raise ValueError(f"the SLA of {modality} must be more than 0 and at most a year of minutes")
            out[modality.strip().upper()] = float(minutes)
        return out

    @field_validator("urgency_points")
    @classmethod
    def _urgencies(cls, values: dict[str, float]) -> dict[str, float]:
        if set(values) != set(URGENCIES):
            raise ValueError("must give points for exactly " + ", ".join(URGENCIES))
        points = [values[u] for u in URGENCIES]
        if any(p < 0 for p in points) or points != sorted(points):
            raise ValueError("points must not be negative and must not fall with urgency "
                             "(routine <= urgent <= critical)")
        return values

    @model_validator(mode="after")
    def _unique_rules(self) -> WorklistSettings:
        names = [r.name for r in self.emergency_rules]
        if len(names) != len(set(names)):
            raise ValueError("emergency rule names must be unique")
        return self

    def sla_for(self, modalities: list[str]) -> float:
        """SLA minutes of a study: the shortest SLA of its modalities."""
        known = [self.sla_minutes.get(m.upper(), self.default_sla_minutes) for m in modalities if m]
        return min(known) if known else self.default_sla_minutes
