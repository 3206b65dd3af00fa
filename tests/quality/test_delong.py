"""DeLong's AUC variance: a published worked example, the definition, and coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from radai.quality.delong import delong_auc, delong_variance, placement_values

# Hanley & McNeil (1982), "The meaning and use of the area under a receiver operating
# characteristic (ROC) curve", Radiology 143:29-36, Table 1: 109 CT images rated on a
# five-point scale (1 = definitely normal ... 5 = definitely abnormal).
HANLEY_NORMAL = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])  # 58 truly normal
HANLEY_ABNORMAL = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])  # 51 truly abnormal


def _hanley() -> tuple[np.ndarray, np.ndarray]:
    y = np.r_[np.ones(HANLEY_ABNORMAL.size, dtype=int), np.zeros(HANLEY_NORMAL.size, dtype=int)]
    return y, np.r_[HANLEY_ABNORMAL, HANLEY_NORMAL].astype(float)


def test_hanley_mcneil_ct_ratings_match_published_delong_interval() -> None:
    # Published figures for these data: Hanley & McNeil report the area as 0.893; Stata's
    # roctab, whose standard error is DeLong, DeLong & Clarke-Pearson's (Stata Base Reference
    # Manual, [R] roctab, example 1 on the same 109 ratings), reports
    # ROC area 0.8932, Std. Err. 0.0307, asymptotic normal 95 % CI 0.83295 - 0.95339.
    y, scores = _hanley()
    est = delong_auc(y, scores)
    assert round(est.auc, 3) == 0.893
    assert est.auc == pytest.approx(0.8932, abs=5e-5)
    assert est.standard_error == pytest.approx(0.0307, abs=5e-5)
    assert est.lower == pytest.approx(0.83295, abs=5e-6)
    assert est.upper == pytest.approx(0.95339, abs=5e-6)


def _structural_components(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong 1988's V10, V01 straight from the definition: an m×n matrix of ψ(X_i, Y_j)."""
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


def _variance_by_definition(pos: np.ndarray, neg: np.ndarray) -> float:
    v10, v01 = _structural_components(pos, neg)
    return float(np.var(v10, ddof=1) / pos.size + np.var(v01, ddof=1) / neg.size)


@pytest.mark.parametrize("seed", range(5))
def test_fast_algorithm_equals_structural_components_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pos = np.round(rng.normal(1.0, 1.0, 70), 1)  # rounded: plenty of ties
    neg = np.round(rng.normal(0.0, 1.0, 90), 1)
    v10, v01 = _structural_components(pos, neg)
    fast = placement_values(pos, neg)
    np.testing.assert_allclose(fast.v10, v10, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.v01, v01, rtol=0, atol=1e-12)
    y = np.r_[np.ones(70, dtype=int), np.zeros(90, dtype=int)]
    est = delong_auc(y, np.r_[pos, neg])
    assert est.variance == pytest.approx(_variance_by_definition(pos, neg), abs=1e-12)


_scores = st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]) | st.floats(0, 1), min_size=2,
                   max_size=40)


@settings(max_examples=80, deadline=None)
@given(pos=_scores, neg=_scores)
def test_auc_and_variance_match_sklearn_and_definition(pos: list[float], neg: list[float]) -> None:
    p, n = np.array(pos), np.array(neg)
    y = np.r_[np.ones(p.size, dtype=int), np.zeros(n.size, dtype=int)]
    s = np.r_[p, n]
    est = delong_auc(y, s)
    assert est.auc == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert est.variance == pytest.approx(_variance_by_definition(p, n), abs=1e-9)
    half = norm.ppf(0.975) * math.sqrt(est.variance)
    assert est.lower == pytest.approx(max(0.0, est.auc - half), abs=1e-9)
    assert est.upper == pytest.approx(min(1.0, est.auc + half), abs=1e-9)


def test_interval_covers_true_auc_about_95_percent_of_the_time() -> None:
    # Binormal model: positives N(d, 1), negatives N(0, 1) have AUC Φ(d/√2); here 0.80.
    true_auc = 0.80
    d = math.sqrt(2.0) * norm.ppf(true_auc)
    rng = np.random.default_rng(20240611)
    y = np.r_[np.ones(50, dtype=int), np.zeros(60, dtype=int)]
    reps = 400
    covered = 0
    for _ in range(reps):
        s = np.r_[rng.normal(d, 1.0, 50), rng.normal(0.0, 1.0, 60)]
        est = delong_auc(y, s)
        covered += est.lower <= true_auc <= est.upper
    # 400 replicates: a true coverage of 0.95 lands within ±0.03 with probability > 0.99;
    # a standard error off by a factor √2 either way gives about 0.83 or 0.995.
    assert 0.92 <= covered / reps <= 0.98


def test_level_changes_interval_width() -> None:
    y, s = _hanley()
    wide, narrow = delong_auc(y, s, level=0.99), delong_auc(y, s, level=0.90)
    ratio = (wide.upper - wide.lower) / (narrow.upper - narrow.lower)
    assert ratio == pytest.approx(norm.ppf(0.995) / norm.ppf(0.95), rel=1e-9)


def test_single_positive_has_no_interval() -> None:
    est = delong_auc([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.95])
    assert est.auc == pytest.approx(2 / 3)
    assert math.isnan(est.variance) and math.isnan(est.lower) and math.isnan(est.upper)


def test_perfect_separation_has_zero_variance() -> None:
    est = delong_auc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1])
    assert (est.auc, est.variance, est.lower, est.upper) == (1.0, 0.0, 1.0, 1.0)


def test_variance_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        placement_values([0.5], [])
    with pytest.raises(ValueError, match="confidence level"):
        delong_auc([1, 0], [0.4, 0.3], level=1.5)
    assert math.isnan(delong_variance(placement_values([0.5], [0.2, 0.1])))
