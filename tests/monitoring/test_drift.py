"""Drift statistics against hand computation and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from radai.monitoring.drift import (
    EPSILON,
    bin_counts,
    categorical_psi,
    chi_square,
    ks_test,
    psi_from_counts,
    score_psi,
)


def test_psi_of_counts_by_hand() -> None:
    # Shares e = (0.5, 0.3, 0.2), a = (0.2, 0.3, 0.5).
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + 0 + (0.5 - 0.2) * math.log(0.5 / 0.2)
    assert psi_from_counts([50, 30, 20], [20, 30, 50]) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.5498, abs=1e-4)


def test_psi_of_identical_distributions_is_zero_and_symmetric_in_swap() -> None:
    assert psi_from_counts([3, 5, 2], [30, 50, 20]) == pytest.approx(0.0, abs=1e-15)
    a, b = [10, 20, 70], [40, 40, 20]
    # PSI is symmetric: Σ(a-e)ln(a/e) does not change when a and e swap.
    assert psi_from_counts(a, b) == pytest.approx(psi_from_counts(b, a))


def test_empty_bin_counts_as_epsilon() -> None:
    value = psi_from_counts([10, 0], [5, 5])
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert value == pytest.approx(expected)
    assert value > 4  # a score range never seen in the reference weighs heavily


def test_score_bins_are_fixed_and_closed_at_one() -> None:
    counts = bin_counts([0.0, 0.05, 0.1, 0.5, 0.99, 1.0], 10)
    assert counts.tolist() == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    with pytest.raises(ValueError, match="probabilities"):
        bin_counts([0.2, 1.2], 10)


def test_score_psi_equals_hand_computation_on_bins() -> None:
    rng = np.random.default_rng(7)
    ref = rng.beta(2, 5, 400)
    cur = rng.beta(5, 2, 300)
    result = score_psi(ref, cur, bins=10)
    e = np.histogram(ref, bins=np.linspace(0, 1, 11))[0] / 400
    a = np.histogram(cur, bins=np.linspace(0, 1, 11))[0] / 300
    e, a = np.where(e > 0, e, EPSILON), np.where(a > 0, a, EPSILON)
    assert result.value == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert result.value > 0.25
    assert result.n_reference == 400 and result.n_current == 300 and len(result.bins) == 10
    assert sum(result.reference_share) == pytest.approx(1.0)


def test_ks_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(0, 1, 50), rng.normal(0.8, 1, 60)
    result = ks_test(ref, cur)
    expected = stats.ks_2samp(ref, cur)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.pvalue == pytest.approx(expected.pvalue)
    assert (result.n_reference, result.n_current) == (50, 60)
    # By hand: the largest gap between the two empirical distribution functions.
    grid = np.sort(np.concatenate([ref, cur]))
    gap = np.max(np.abs(np.searchsorted(np.sort(ref), grid, side="right") / 50
                        - np.searchsorted(np.sort(cur), grid, side="right") / 60))
    assert result.statistic == pytest.approx(gap)


def test_categorical_psi_and_chi_square() -> None:
    ref = ["GE"] * 60 + ["SIEMENS"] * 40
    cur = ["GE"] * 20 + ["SIEMENS"] * 30 + ["AGFA"] * 50
    psi = categorical_psi(ref, cur)
    assert psi.bins == ("AGFA", "GE", "SIEMENS")
    e = np.array([EPSILON, 0.6, 0.4])
    a = np.array([0.5, 0.2, 0.3])
    assert psi.value == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    chi = chi_square(ref, cur)
    expected = stats.chi2_contingency(np.array([[0, 60, 40], [50, 20, 30]]))
    assert chi.statistic == pytest.approx(expected.statistic)
    assert chi.pvalue == pytest.approx(expected.pvalue)
    assert chi.pvalue < 1e-10


def test_chi_square_of_one_category_cannot_differ() -> None:
    result = chi_square(["CHEST"] * 5, ["CHEST"] * 9)
    assert (result.statistic, result.pvalue) == (0.0, 1.0)


def test_empty_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        ks_test([], [0.1])
    with pytest.raises(ValueError, match="at least one value"):
        psi_from_counts([0, 0], [1, 2])
