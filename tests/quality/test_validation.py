"""A validation run: uncertain labels and technical defects are counted, never silently dropped."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from radai.models.api import DefectCategory
from radai.quality.inputs import FindingSpec, StudyOutcome, TechnicalDefect, Truth
from radai.quality.metrics import binary_metrics
from radai.quality.validation import evaluate_validation

PNEUMONIA = FindingSpec("pneumonia", "Pneumonia", 0.5)
P, A, U = Truth.PRESENT, Truth.ABSENT, Truth.UNCERTAIN


def _study(key: str, truth: Truth, p: float, **subgroups: str) -> StudyOutcome:
    return StudyOutcome(key, {"pneumonia": truth}, {"pneumonia": p}, subgroups)


def _cohort() -> list[StudyOutcome]:
    rng = np.random.default_rng(7)
    studies = []
    for i in range(120):
        present = i % 3 == 0
        p = float(np.clip(rng.normal(0.7 if present else 0.3, 0.2), 0, 1))
        truth = U if i % 17 == 0 else (P if present else A)
        sex = "F" if i % 2 else "M"
        studies.append(_study(f"K{i:03d}", truth, p, sex=sex, manufacturer="Agfa" if i < 80 else "Philips"))
    # A manufacturer with only negative studies: its metrics are not computable.
    studies += [_study(f"N{i}", A, 0.1 * i, sex="F", manufacturer="Fujifilm") for i in range(4)]
    return studies


def test_uncertain_labels_are_excluded_and_counted() -> None:
    studies = _cohort()
    result = evaluate_validation(findings=[PNEUMONIA], outcomes=studies)
    f = result.findings[0]
    certain = [s for s in studies if s.truth["pneumonia"] is not U]
    assert f.labels.n_uncertain == sum(1 for s in studies if s.truth["pneumonia"] is U) == 8
    assert f.labels.n_positive + f.labels.n_negative == len(certain)
    assert f.metrics is not None
    y = [int(s.truth["pneumonia"] is P) for s in certain]
    p = [s.probabilities["pneumonia"] for s in certain]
    assert f.metrics.auc.auc == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert f.metrics.n_positive + f.metrics.n_negative == len(certain)


def test_technical_defects_are_counted_listed_and_excluded() -> None:
    defects = [
        TechnicalDefect("D2", DefectCategory.MODEL_ERROR, "model raised an error", {"sex": "F"}),
        TechnicalDefect("D1", DefectCategory.INPUT_NOT_SUITED, "wrong modality", {"sex": "M"}),
        TechnicalDefect("D3", DefectCategory.INPUT_NOT_SUITED, "no pixel data", {}),
    ]
    studies = _cohort()
    result = evaluate_validation(findings=[PNEUMONIA], outcomes=studies, defects=defects)
    assert (result.n_studies, result.n_processed) == (len(studies) + 3, len(studies))
    assert [d.study_key for d in result.defects.defects] == ["D1", "D2", "D3"]
    assert dict(result.defects.by_category) == {
        DefectCategory.INPUT_NOT_SUITED: 2,
        DefectCategory.MODEL_ERROR: 1,
    }
    assert (result.defects.rate.successes, result.defects.rate.total) == (3, len(studies) + 3)
    # Metrics are those of the processed studies alone.
    alone = evaluate_validation(findings=[PNEUMONIA], outcomes=studies)
    assert result.findings[0].metrics == alone.findings[0].metrics
    sex_rows = {r.value: r for r in result.findings[0].subgroups if r.attribute == "sex"}
    assert (sex_rows["F"].n_defects, sex_rows["M"].n_defects, sex_rows["unknown"].n_defects) == (1, 1, 1)
    assert sex_rows["unknown"].n_studies == 0
    assert sex_rows["unknown"].not_computable == "no studies"


def test_subgroups_have_counts_metrics_or_the_reason_they_have_none() -> None:
    studies = _cohort()
    result = evaluate_validation(
        findings=[PNEUMONIA], outcomes=studies, subgroup_attributes=("manufacturer", "sex")
    )
    rows = result.findings[0].subgroups
    assert [(r.attribute, r.value) for r in rows] == [
        ("manufacturer", "Agfa"), ("manufacturer", "Fujifilm"), ("manufacturer", "Philips"),
        ("sex", "F"), ("sex", "M"),
    ]
    fuji = rows[1]
    assert (fuji.n_studies, fuji.labels.n_positive, fuji.labels.n_negative) == (4, 0, 4)
    assert fuji.metrics is None and fuji.not_computable == "no positive studies"
    agfa = rows[0]
    members = [s for s in studies if s.subgroups["manufacturer"] == "Agfa" and s.truth["pneumonia"] is not U]
    expected = binary_metrics(
        np.array([int(s.truth["pneumonia"] is P) for s in members]),
        np.array([s.probabilities["pneumonia"] for s in members]),
        threshold=0.5,
    )
    assert agfa.metrics == expected
    assert agfa.n_studies == sum(1 for s in studies if s.subgroups["manufacturer"] == "Agfa")


def test_missing_subgroup_values_are_grouped_as_unknown() -> None:
    studies = [_study("a", P, 0.9, sex="F"), _study("b", A, 0.2, sex=" "), _study("c", A, 0.4)]
    result = evaluate_validation(findings=[PNEUMONIA], outcomes=studies, subgroup_attributes=("sex",))
    assert [(r.value, r.n_studies) for r in result.findings[0].subgroups] == [("F", 1), ("unknown", 2)]


def test_finding_without_positives_is_not_computable_but_counted() -> None:
    studies = [_study(f"s{i}", A, 0.1 * i) for i in range(5)] + [_study("u", U, 0.9)]
    f = evaluate_validation(findings=[PNEUMONIA], outcomes=studies).findings[0]
    assert f.metrics is None and f.not_computable == "no positive studies"
    assert (f.labels.n_positive, f.labels.n_negative, f.labels.n_uncertain) == (0, 5, 1)


def _classes() -> list[FindingSpec]:
    return [FindingSpec(c, c.title(), 0.5) for c in ("glioma", "meningioma", "none")]


def _mc(key: str, true: str, probs: tuple[float, float, float], uncertain: bool = False) -> StudyOutcome:
    codes = ("glioma", "meningioma", "none")
    truth = {c: (U if uncertain else (P if c == true else A)) for c in codes}
    return StudyOutcome(key, truth, dict(zip(codes, probs, strict=True)))


def test_multiclass_accuracy_one_vs_rest_and_uncertain_exclusion() -> None:
    studies = [
        _mc("a", "glioma", (0.7, 0.2, 0.1)),
        _mc("b", "glioma", (0.3, 0.6, 0.1)),
        _mc("c", "meningioma", (0.1, 0.8, 0.1)),
        _mc("d", "none", (0.1, 0.1, 0.8)),
        _mc("e", "none", (0.5, 0.1, 0.4)),
        _mc("f", "none", (0.2, 0.2, 0.6), uncertain=True),
    ]
    result = evaluate_validation(findings=_classes(), outcomes=studies, multiclass=True)
    mc = result.multiclass
    assert mc is not None and mc.metrics is not None
    assert mc.n_uncertain == 1
    assert (mc.metrics.accuracy.successes, mc.metrics.accuracy.total) == (3, 5)
    assert mc.metrics.confusion == ((1, 1, 0), (0, 1, 0), (1, 0, 1))
    glioma = result.findings[0]
    assert (glioma.labels.n_positive, glioma.labels.n_negative, glioma.labels.n_uncertain) == (2, 3, 1)
    assert glioma.metrics is not None
    assert glioma.metrics.auc.auc == pytest.approx(roc_auc_score([1, 1, 0, 0, 0], [0.7, 0.3, 0.1, 0.1, 0.5]))


def test_bad_input_names_the_study_and_finding() -> None:
    good = _study("a", P, 0.9)
    with pytest.raises(ValueError, match="study 'b' has no probability for finding 'pneumonia'"):
        evaluate_validation(findings=[PNEUMONIA], outcomes=[good, StudyOutcome("b", {"pneumonia": A}, {})])
    with pytest.raises(ValueError, match="study 'b' has no label for finding 'pneumonia'"):
        evaluate_validation(findings=[PNEUMONIA], outcomes=[good, StudyOutcome("b", {}, {"pneumonia": 0.1})])
    with pytest.raises(ValueError, match="study key 'a' occurs more than once"):
        evaluate_validation(findings=[PNEUMONIA], outcomes=[good, good])
    with pytest.raises(ValueError, match="study 'a' has both an outcome and a technical defect"):
        evaluate_validation(
            findings=[PNEUMONIA], outcomes=[good],
            defects=[TechnicalDefect("a", DefectCategory.MODEL_ERROR, "failed")],
        )
    with pytest.raises(ValueError, match="finding code 'pneumonia' occurs more than once"):
        evaluate_validation(findings=[PNEUMONIA, PNEUMONIA], outcomes=[good])
    with pytest.raises(ValueError, match="exactly one present class"):
        evaluate_validation(
            findings=_classes(), multiclass=True,
            outcomes=[StudyOutcome("x", {"glioma": P, "meningioma": P, "none": A},
                                   {"glioma": 0.5, "meningioma": 0.5, "none": 0.0})],
        )
    with pytest.raises(ValueError, match=r"finding 'pneumonia' in study 'z' must be within 0\.\.1"):
        _study("z", P, 1.5)
    with pytest.raises(ValueError, match=r"threshold of finding 'x' must be within 0\.\.1"):
        FindingSpec("x", "X", -0.1)
