"""Drift statistics against hand computation and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from radai.monitoring.drift import (
    PSEUDOCOUNT,
    bin_counts,
    categorical_psi,
    chi_square,
    ks_test,
    psi_from_counts,
    score_psi,
)
from radai.monitoring.settings import MonitoringSettings


def smoothed(counts: list[int]) -> np.ndarray:
    c = np.asarray(counts, dtype=float)
    return (c + PSEUDOCOUNT) / (c.sum() + PSEUDOCOUNT * c.size)


def test_psi_of_counts_by_hand() -> None:
    # Smoothed shares e = (50.5, 30.5, 20.5)/101.5, a = (20.5, 30.5, 50.5)/101.5.
    e = [50.5 / 101.5, 30.5 / 101.5, 20.5 / 101.5]
    a = [20.5 / 101.5, 30.5 / 101.5, 50.5 / 101.5]
    expected = sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True))
    assert psi_from_counts([50, 30, 20], [20, 30, 50]) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.5329, abs=1e-4)


def test_psi_of_identical_distributions_is_zero_and_symmetric_in_swap() -> None:
    assert psi_from_counts([30, 50, 20], [30, 50, 20]) == pytest.approx(0.0, abs=1e-15)
    # Equal shares of samples of different sizes differ only by the smoothing.
    assert psi_from_counts([3, 5, 2], [300, 500, 200]) < 0.01
    a, b = [10, 20, 70], [40, 40, 20]
    # PSI is symmetric: Σ(a-e)ln(a/e) does not change when a and e swap.
    assert psi_from_counts(a, b) == pytest.approx(psi_from_counts(b, a))


def test_an_empty_bin_stays_finite() -> None:
    value = psi_from_counts([100, 0], [50, 50])
    e, a = smoothed([100, 0]), smoothed([50, 50])
    assert value == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert 1.5 < value < 3  # half the window in a range never seen in the reference: a large shift


def test_sampling_noise_at_the_default_minimum_stays_under_the_alarm_level() -> None:
    rng = np.random.default_rng(11)
    n = MonitoringSettings().min_psi_studies
    null = [score_psi(rng.beta(2, 8, n), rng.beta(2, 8, n)).value for _ in range(200)]
    assert float(np.percentile(null, 90)) < 0.25
    shifted = [score_psi(rng.beta(2, 8, n), rng.beta(8, 2, n)).value for _ in range(20)]
    assert min(shifted) > 2


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
    e = smoothed(list(np.histogram(ref, bins=np.linspace(0, 1, 11))[0]))
    a = smoothed(list(np.histogram(cur, bins=np.linspace(0, 1, 11))[0]))
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
    e, a = smoothed([0, 60, 40]), smoothed([50, 20, 30])
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
