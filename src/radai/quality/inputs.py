"""What a validation run (model version × frozen dataset version) hands to the metrics.

Every study of the dataset either has an outcome (the model processed it) or a
technical defect (it did not); nothing is dropped silently. Studies are named by the
dataset's own study keys, never by patient names, IDs or UIDs, because these keys are
what the report shows.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from radai.models.api import DefectCategory

#: Subgroup attributes reported by default, in this order.
SEX = "sex"
AGE_BAND = "age_band"
MANUFACTURER = "manufacturer"
INSTITUTION = "institution"
SUBGROUP_ATTRIBUTES: tuple[str, ...] = (SEX, AGE_BAND, MANUFACTURER, INSTITUTION)
#: The subgroup value of a study whose attribute is not known.
UNKNOWN = "unknown"


class Truth(enum.StrEnum):
    """The reference label of one finding in one study."""

    PRESENT = "present"
    ABSENT = "absent"
    #: The readers could not decide; excluded from binary metrics and counted.
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class FindingSpec:
    """One output of the model: its code, meaning and operating point (from the manifest).

    A study is called positive for the finding when its probability is at least
    ``threshold``.
    """

    code: str
    meaning: str
    threshold: float

    def __post_init__(self) -> None:
        if not self.code:
            raise ValueError("finding code must not be empty")
        if not (math.isfinite(self.threshold) and 0.0 <= self.threshold <= 1.0):
            raise ValueError(f"threshold of finding {self.code!r} must be within 0..1")


@dataclass(frozen=True)
class StudyOutcome:
    """One processed study: true label and model probability per finding code."""

    #: The dataset's key for the study (shown in the report; holds no patient data).
    study_key: str
    truth: Mapping[str, Truth]
    probabilities: Mapping[str, float]
    #: Subgroup attribute -> value, e.g. ``{"sex": "F", "age_band": "40-49"}``.
    subgroups: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.study_key:
            raise ValueError("study_key must not be empty")
        for code, truth in self.truth.items():
            if not isinstance(truth, Truth):
                raise TypeError(f"truth of finding {code!r} in study {self.study_key!r} must be a Truth")
        for code, p in self.probabilities.items():
            if not (isinstance(p, float | int) and math.isfinite(p) and 0.0 <= p <= 1.0):
                raise ValueError(
                    f"probability of finding {code!r} in study {self.study_key!r} must be within 0..1"
                )


@dataclass(frozen=True)
class TechnicalDefect:
    """A study the model could not process (the Moscow experiment's defect taxonomy)."""

    study_key: str
    category: DefectCategory
    #: For people; holds no patient data (see :class:`radai.models.api.ModelDefect`).
    reason: str
    subgroups: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.study_key:
            raise ValueError("study_key of a technical defect must not be empty")
        if not isinstance(self.category, DefectCategory):
            raise TypeError(f"category of defect for study {self.study_key!r} must be a DefectCategory")
