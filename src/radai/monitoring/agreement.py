"""Agreement of a model's decisions with radiologists' verdicts.

The unit is one (study, finding code) the model scored, in a study whose report was
signed: the ground truth is the verdict recorded in the latest signed report version
of the study (radai.worklist, "verdict semantics"). Each unit is exactly one of:

=====================================================  ==========
AI decision at its operating point, and the verdict    outcome
=====================================================  ==========
positive, ``agree``                                    TP
positive, ``disagree``                                 FP
negative, ``agree`` (and no missed finding of the code)  TN
negative, ``disagree``                                 FN
negative, a missed finding of the same code recorded   FN
either, ``uncertain`` (negative: and no missed finding)  uncertain
no verdict and no missed finding in the signed report  unreviewed
=====================================================  ==========

A missed finding recorded for a code the AI called positive contradicts itself (the
AI did report it) and is ignored; the verdict on the positive finding decides.
Uncertain and unreviewed units are counted but enter no rate. From the counts:

- sensitivity = TP / (TP + FN), specificity = TN / (TN + FP),
  PPV = TP / (TP + FP), NPV = TN / (TN + FN),

each a proportion with its Wilson score interval (radai.quality.metrics.wilson, i.e.
statsmodels ``proportion_confint(method="wilson")``; Wilson 1927, JASA 22:209-212).
These are the model's rates *as judged by the reading radiologists*, not against an
independent reference standard: they estimate agreement, and a radiologist's own
errors enter them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from radai.quality.metrics import Proportion, wilson


class Outcome(enum.StrEnum):
    """What one reviewed (study, code) unit counts as (see the module docstring)."""

    TP = "tp"
    FP = "fp"
    TN = "tn"
    FN = "fn"
    UNCERTAIN = "uncertain"
    UNREVIEWED = "unreviewed"


@dataclass(frozen=True)
class ReviewedCase:
    """One (study, finding code) the model scored, with what the signed report says."""

    ai_positive: bool
    #: ``agree``, ``disagree``, ``uncertain``, or None when the report holds no verdict on it.
    verdict: str | None
    #: The signed report records a missed finding of this code.
    missed: bool = False


def classify(case: ReviewedCase) -> Outcome:
    """The outcome of one unit (the table of the module docstring)."""
    if case.verdict not in (None, "agree", "disagree", "uncertain"):
        raise ValueError("verdict must be agree, disagree, uncertain or None")
    if case.ai_positive:
        return {"agree": Outcome.TP, "disagree": Outcome.FP,
                "uncertain": Outcome.UNCERTAIN, None: Outcome.UNREVIEWED}[case.verdict]
    if case.missed or case.verdict == "disagree":
        return Outcome.FN
    return {"agree": Outcome.TN, "uncertain": Outcome.UNCERTAIN,
            None: Outcome.UNREVIEWED}[case.verdict]


@dataclass(frozen=True)
class AgreementCounts:
    """How many units fell into each outcome."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    uncertain: int = 0
    unreviewed: int = 0

    @property
    def reviewed(self) -> int:
        """Units with a definite verdict (entering the rates)."""
        return self.tp + self.fp + self.tn + self.fn


@dataclass(frozen=True)
class Agreement:
    """Counts and rates with Wilson intervals (NaN where a denominator is 0)."""

    counts: AgreementCounts
    sensitivity: Proportion
    specificity: Proportion
    ppv: Proportion
    npv: Proportion


def count_outcomes(cases: Iterable[ReviewedCase]) -> AgreementCounts:
    """Tally the outcomes of ``cases``."""
    tally = dict.fromkeys(Outcome, 0)
    for case in cases:
        tally[classify(case)] += 1
    return AgreementCounts(tp=tally[Outcome.TP], fp=tally[Outcome.FP], tn=tally[Outcome.TN],
                           fn=tally[Outcome.FN], uncertain=tally[Outcome.UNCERTAIN],
                           unreviewed=tally[Outcome.UNREVIEWED])


def agreement(counts: AgreementCounts, *, level: float = 0.95) -> Agreement:
    """Sensitivity, specificity, PPV and NPV from the counts, with Wilson intervals."""
    c = counts
    return Agreement(
        counts=c,
        sensitivity=wilson(c.tp, c.tp + c.fn, level=level),
        specificity=wilson(c.tn, c.tn + c.fp, level=level),
        ppv=wilson(c.tp, c.tp + c.fp, level=level),
        npv=wilson(c.tn, c.tn + c.fn, level=level),
    )
