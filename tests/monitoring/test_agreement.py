"""Agreement counts and Wilson intervals from verdicts; latency percentiles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from radai.monitoring.agreement import (
    AgreementCounts,
    Outcome,
    ReviewedCase,
    agreement,
    classify,
    count_outcomes,
)
from radai.monitoring.latency import summarise


@pytest.mark.parametrize(("case", "outcome"), [
    (ReviewedCase(True, "agree"), Outcome.TP),
    (ReviewedCase(True, "disagree"), Outcome.FP),
    (ReviewedCase(True, "uncertain"), Outcome.UNCERTAIN),
    (ReviewedCase(True, None), Outcome.UNREVIEWED),
    (ReviewedCase(True, "agree", missed=True), Outcome.TP),
    (ReviewedCase(False, "agree"), Outcome.TN),
    (ReviewedCase(False, "disagree"), Outcome.FN),
    (ReviewedCase(False, None, missed=True), Outcome.FN),
    (ReviewedCase(False, "agree", missed=True), Outcome.FN),
    (ReviewedCase(False, "uncertain"), Outcome.UNCERTAIN),
    (ReviewedCase(False, None), Outcome.UNREVIEWED),
])
def test_each_unit_has_one_outcome(case: ReviewedCase, outcome: Outcome) -> None:
    assert classify(case) == outcome


def test_unknown_verdict_is_refused() -> None:
    with pytest.raises(ValueError, match="verdict"):
        classify(ReviewedCase(True, "maybe"))


def test_rates_and_wilson_intervals() -> None:
    cases = ([ReviewedCase(True, "agree")] * 18 + [ReviewedCase(True, "disagree")] * 6
             + [ReviewedCase(False, "agree")] * 70 + [ReviewedCase(False, "disagree")] * 2
             + [ReviewedCase(False, None, missed=True)] * 2 + [ReviewedCase(False, "uncertain")] * 3
             + [ReviewedCase(True, None)] * 4)
    counts = count_outcomes(cases)
    assert counts == AgreementCounts(tp=18, fp=6, tn=70, fn=4, uncertain=3, unreviewed=4)
    assert counts.reviewed == 98
    a = agreement(counts)
    assert a.sensitivity.estimate == pytest.approx(18 / 22)
    assert a.specificity.estimate == pytest.approx(70 / 76)
    assert a.ppv.estimate == pytest.approx(18 / 24)
    assert a.npv.estimate == pytest.approx(70 / 74)
    lo, hi = proportion_confint(18, 22, alpha=0.05, method="wilson")
    assert (a.sensitivity.lower, a.sensitivity.upper) == pytest.approx((lo, hi))
    # Wilson by hand: (p + z²/2n ± z√(p(1-p)/n + z²/4n²)) / (1 + z²/n).
    z, n, p = 1.959963984540054, 22, 18 / 22
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert a.sensitivity.lower == pytest.approx(centre - half)


def test_no_verdicts_gives_nan_rates() -> None:
    a = agreement(count_outcomes([ReviewedCase(True, None)]))
    assert a.counts.unreviewed == 1
    assert math.isnan(a.sensitivity.estimate) and math.isnan(a.sensitivity.lower)


def test_latency_percentiles_equal_numpy() -> None:
    values = [120.0, 80.0, None, 400.0, 95.0, 3000.0, 110.0, float("nan"), 150.0]
    s = summarise(values)
    known = np.array([120.0, 80.0, 400.0, 95.0, 3000.0, 110.0, 150.0])
    assert s.count == 7
    assert s.mean_ms == pytest.approx(known.mean())
    assert s.p50_ms == pytest.approx(120.0)
    assert s.p95_ms == pytest.approx(float(np.percentile(known, 95)))
    # Linear interpolation by hand: rank 0.9·6 = 5.4 between 400 and 3000.
    assert s.p90_ms == pytest.approx(400 + 0.4 * (3000 - 400))
    assert s.percentile(99) == s.p99_ms
    empty = summarise([None])
    assert empty.count == 0 and math.isnan(empty.p95_ms)
