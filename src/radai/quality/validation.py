"""The metrics of one validation run: per finding, per subgroup, multi-class, defects.

How studies are counted (the report states the same):

- A study whose label for a finding is *uncertain* is left out of that finding's
  binary metrics and counted in ``n_uncertain``.
- A study the model could not process (technical defect) has no probability, so it is
  left out of every metric and counted and listed in :class:`DefectSummary`; the defect
  rate is defects / all studies of the dataset.
- A subgroup without positives or without negatives gets counts and the reason why its
  metrics are not computable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from radai.models.api import DefectCategory
from radai.quality.inputs import (
    SUBGROUP_ATTRIBUTES,
    UNKNOWN,
    FindingSpec,
    StudyOutcome,
    TechnicalDefect,
    Truth,
)
from radai.quality.metrics import (
    BinaryMetrics,
    MulticlassMetrics,
    NotComputable,
    Proportion,
    binary_metrics,
    multiclass_metrics,
    wilson,
)


@dataclass(frozen=True)
class LabelCounts:
    """How many studies are positive, negative and uncertain for a finding."""

    n_positive: int
    n_negative: int
    n_uncertain: int


@dataclass(frozen=True)
class SubgroupRow:
    """One value of one subgroup attribute (e.g. sex = F) for one finding."""

    attribute: str
    value: str
    #: Processed studies in the subgroup.
    n_studies: int
    labels: LabelCounts
    #: Technical defects in the subgroup (not in ``n_studies``).
    n_defects: int
    metrics: BinaryMetrics | None
    not_computable: str | None


@dataclass(frozen=True)
class FindingResult:
    """One finding over all processed studies, and by subgroup."""

    spec: FindingSpec
    labels: LabelCounts
    metrics: BinaryMetrics | None
    not_computable: str | None
    #: Rows grouped by attribute in ``ValidationResult.subgroup_attributes`` order.
    subgroups: tuple[SubgroupRow, ...]


@dataclass(frozen=True)
class MulticlassResult:
    """Overall accuracy of a model whose findings are mutually exclusive classes."""

    metrics: MulticlassMetrics | None
    not_computable: str | None
    #: Studies left out because one of their class labels is uncertain.
    n_uncertain: int


@dataclass(frozen=True)
class DefectSummary:
    """The technical defects of the run, all of them listed."""

    defects: tuple[TechnicalDefect, ...]
    by_category: tuple[tuple[DefectCategory, int], ...]
    #: Defects among all studies of the dataset, with a Wilson interval.
    rate: Proportion


@dataclass(frozen=True)
class ValidationResult:
    """Everything computed for one validation run."""

    findings: tuple[FindingResult, ...]
    multiclass: MulticlassResult | None
    #: All studies of the dataset: processed + technical defects.
    n_studies: int
    n_processed: int
    defects: DefectSummary
    level: float
    calibration_bins: int
    subgroup_attributes: tuple[str, ...]


def evaluate_validation(
    *,
    findings: Sequence[FindingSpec],
    outcomes: Sequence[StudyOutcome],
    defects: Sequence[TechnicalDefect] = (),
    multiclass: bool = False,
    level: float = 0.95,
    calibration_bins: int = 10,
    subgroup_attributes: Sequence[str] = SUBGROUP_ATTRIBUTES,
) -> ValidationResult:
    """Compute every metric of a validation run.

    ``findings`` are the model's outputs with their operating points; every outcome must
    carry a label and a probability for each of them (other codes are ignored).
    With ``multiclass`` the findings are mutually exclusive classes: each is also
    evaluated one-vs-rest, and the class of highest probability is compared with the
    single present class for the overall accuracy.
    Raises ``ValueError`` naming the study key and finding code of an inconsistent input.
    """
    _check_inputs(findings, outcomes, defects, multiclass)
    attributes = tuple(subgroup_attributes)
    results = tuple(
        _finding_result(spec, outcomes, defects, attributes, level, calibration_bins) for spec in findings
    )
    n_studies = len(outcomes) + len(defects)
    return ValidationResult(
        findings=results,
        multiclass=_multiclass_result(findings, outcomes, level) if multiclass else None,
        n_studies=n_studies,
        n_processed=len(outcomes),
        defects=_defect_summary(defects, n_studies, level),
        level=level,
        calibration_bins=calibration_bins,
        subgroup_attributes=attributes,
    )


def _check_inputs(
    findings: Sequence[FindingSpec],
    outcomes: Sequence[StudyOutcome],
    defects: Sequence[TechnicalDefect],
    multiclass: bool,
) -> None:
    codes = [f.code for f in findings]
    if not codes:
        raise ValueError("a validation needs at least one finding")
    _no_duplicates(codes, "finding code")
    if multiclass and len(codes) < 2:
        raise ValueError("a multi-class validation needs at least two classes")
    _no_duplicates([o.study_key for o in outcomes], "study key")
    _no_duplicates([d.study_key for d in defects], "study key of a technical defect")
    both = {o.study_key for o in outcomes} & {d.study_key for d in defects}
    if both:
        raise ValueError(f"study {min(both)!r} has both an outcome and a technical defect")
    for outcome in outcomes:
        for code in codes:
            if code not in outcome.truth:
                raise ValueError(f"study {outcome.study_key!r} has no label for finding {code!r}")
            if code not in outcome.probabilities:
                raise ValueError(f"study {outcome.study_key!r} has no probability for finding {code!r}")


def _no_duplicates(values: Iterable[str], what: str) -> None:
    repeated = [v for v, n in Counter(values).items() if n > 1]
    if repeated:
        raise ValueError(f"{what} {min(repeated)!r} occurs more than once")


def _labels(code: str, outcomes: Sequence[StudyOutcome]) -> LabelCounts:
    tally = Counter(o.truth[code] for o in outcomes)
    return LabelCounts(tally[Truth.PRESENT], tally[Truth.ABSENT], tally[Truth.UNCERTAIN])


def _metrics(
    spec: FindingSpec, outcomes: Sequence[StudyOutcome], level: float, bins: int
) -> tuple[BinaryMetrics | None, str | None]:
    certain = [o for o in outcomes if o.truth[spec.code] is not Truth.UNCERTAIN]
    y = np.array([o.truth[spec.code] is Truth.PRESENT for o in certain], dtype=int)
    s = np.array([o.probabilities[spec.code] for o in certain], dtype=np.float64)
    try:
        return binary_metrics(y, s, threshold=spec.threshold, calibration_bins=bins, level=level), None
    except NotComputable as exc:
        return None, exc.reason


def _finding_result(
    spec: FindingSpec,
    outcomes: Sequence[StudyOutcome],
    defects: Sequence[TechnicalDefect],
    attributes: tuple[str, ...],
    level: float,
    bins: int,
) -> FindingResult:
    metrics, reason = _metrics(spec, outcomes, level, bins)
    rows = tuple(
        row
        for attribute in attributes
        for row in _subgroup_rows(spec, attribute, outcomes, defects, level, bins)
    )
    return FindingResult(
        spec=spec, labels=_labels(spec.code, outcomes), metrics=metrics, not_computable=reason, subgroups=rows
    )


def subgroup_value(subgroups: Mapping[str, str], attribute: str) -> str:
    """The study's value of ``attribute``, or ``"unknown"`` when missing or blank."""
    value = subgroups.get(attribute)
    return value.strip() if isinstance(value, str) and value.strip() else UNKNOWN


def _subgroup_rows(
    spec: FindingSpec,
    attribute: str,
    outcomes: Sequence[StudyOutcome],
    defects: Sequence[TechnicalDefect],
    level: float,
    bins: int,
) -> list[SubgroupRow]:
    by_value: dict[str, list[StudyOutcome]] = {}
    for o in outcomes:
        by_value.setdefault(subgroup_value(o.subgroups, attribute), []).append(o)
    defect_counts = Counter(subgroup_value(d.subgroups, attribute) for d in defects)
    values = sorted(set(by_value) | set(defect_counts), key=lambda v: (v == UNKNOWN, v))
    rows = []
    for value in values:
        members = by_value.get(value, [])
        metrics, reason = _metrics(spec, members, level, bins)
        rows.append(
            SubgroupRow(
                attribute=attribute,
                value=value,
                n_studies=len(members),
                labels=_labels(spec.code, members),
                n_defects=defect_counts[value],
                metrics=metrics,
                not_computable=reason,
            )
        )
    return rows


def _multiclass_result(
    findings: Sequence[FindingSpec], outcomes: Sequence[StudyOutcome], level: float
) -> MulticlassResult:
    codes = tuple(f.code for f in findings)
    truths: list[int] = []
    rows: list[list[float]] = []
    uncertain = 0
    for o in outcomes:
        labels = [o.truth[c] for c in codes]
        if Truth.UNCERTAIN in labels:
            uncertain += 1
            continue
        present = [i for i, t in enumerate(labels) if t is Truth.PRESENT]
        if len(present) != 1:
            raise ValueError(
                f"study {o.study_key!r} must have exactly one present class in a multi-class validation,"
                f" has {len(present)}"
            )
        truths.append(present[0])
        rows.append([o.probabilities[c] for c in codes])
    try:
        probs = np.array(rows, dtype=np.float64).reshape(len(rows), len(codes))
        metrics = multiclass_metrics(np.array(truths, dtype=int), probs, codes, level=level)
    except NotComputable as exc:
        return MulticlassResult(metrics=None, not_computable=exc.reason, n_uncertain=uncertain)
    return MulticlassResult(metrics=metrics, not_computable=None, n_uncertain=uncertain)


def _defect_summary(defects: Sequence[TechnicalDefect], n_studies: int, level: float) -> DefectSummary:
    tally = Counter(d.category for d in defects)
    return DefectSummary(
        defects=tuple(sorted(defects, key=lambda d: d.study_key)),
        by_category=tuple((c, tally[c]) for c in DefectCategory if tally[c]),
        rate=wilson(len(defects), n_studies, level=level),
    )
