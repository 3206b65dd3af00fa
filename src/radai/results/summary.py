"""The JSON summary of a result and its plain-language conclusion.

Modelled on the result format of the Moscow experiment on computer vision in radiology:
a pathology flag, a confidence level from 0 to 100, a conclusion in words, the model's
identity and the times the study was received, started and finished. Here the
confidence level is the model's highest probability over its findings, in percent
(rounded), i.e. how strongly the model leans to a pathology; the pathology flag is
whether any finding reached its operating point.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from radai.models.api import DefectCategory, FindingScore
from radai.results.common import NOT_FOR_DIAGNOSIS, Algorithm
from radai.results.schemas import CodeOut, DefectOut, FindingOut, ResultSummary, Timestamps
from radai.results.sr import defect_text


def conclusion_text(findings: Sequence[FindingScore]) -> str:
    """The conclusion in words, for the SR, the JSON summary and people reading either."""
    if not findings:
        raise ValueError("a conclusion needs at least one finding")
    positive = [f for f in findings if f.positive]
    if positive:
        signs = "; ".join(f"{f.label} suspected (probability {f.probability:.2f}, operating point "
                          f"{f.threshold:.2f}, urgency {f.urgency})" for f in positive)
        return f"{NOT_FOR_DIAGNOSIS}. {signs}. A radiologist must confirm."
    checked = "; ".join(f"{f.label} {f.probability:.2f} (operating point {f.threshold:.2f})"
                        for f in findings)
    return f"{NOT_FOR_DIAGNOSIS}. No finding reached the model's operating point: {checked}."


def confidence_level(findings: Sequence[FindingScore]) -> int:
    """The highest probability of ``findings`` in percent (0-100)."""
    return round(100.0 * max(min(max(f.probability, 0.0), 1.0) for f in findings))


def finding_out(f: FindingScore) -> FindingOut:
    """One finding for the API."""
    return FindingOut(code=CodeOut(value=f.code.value, scheme=f.code.scheme, meaning=f.code.meaning),
                      label=f.label, probability=float(f.probability), threshold=float(f.threshold),
                      positive=bool(f.positive), urgency=f.urgency)


def findings_summary(*, algorithm: Algorithm, findings: Sequence[FindingScore],
                     received: datetime | None = None, started: datetime | None = None,
                     finished: datetime | None = None) -> ResultSummary:
    """The summary of a task that produced findings."""
    return ResultSummary(
        status="findings", pathology_flag=any(f.positive for f in findings),
        confidence_level=confidence_level(findings), conclusion=conclusion_text(findings),
        model_id=algorithm.model_id, model_version=algorithm.version, model_name=algorithm.name,
        findings=[finding_out(f) for f in findings],
        timestamps=Timestamps(received=received, started=started, finished=finished))


def defect_summary(*, algorithm: Algorithm, category: DefectCategory, reason: str,
                   received: datetime | None = None, started: datetime | None = None,
                   finished: datetime | None = None) -> ResultSummary:
    """The summary of a task that ended as a technical defect."""
    category = DefectCategory(category)
    return ResultSummary(
        status="defect", pathology_flag=None, confidence_level=None,
        conclusion=defect_text(category, reason), model_id=algorithm.model_id,
        model_version=algorithm.version, model_name=algorithm.name,
        defect=DefectOut(category=category, reason=reason),
        timestamps=Timestamps(received=received, started=started, finished=finished))
