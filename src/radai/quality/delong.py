"""ROC AUC with its variance and confidence interval by DeLong's method.

DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two or more
correlated receiver operating characteristic curves: a nonparametric approach",
Biometrics 44(3):837-845, doi:10.2307/2531595, estimate the variance of the
Mann-Whitney AUC from its structural components (placement values)

    V10(X_i) = 1/n · Σ_j ψ(X_i, Y_j),  V01(Y_j) = 1/m · Σ_i ψ(X_i, Y_j),
    ψ(x, y) = 1 if x > y, 1/2 if x = y, 0 otherwise,

for m positive scores X and n negative scores Y:

    Var(AUC) = S10 / m + S01 / n,

with S10, S01 the sample variances (denominator m-1, n-1) of V10 and V01.

The placement values are computed in O(N log N) from midranks as in Sun & Xu (2014),
"Fast implementation of DeLong's algorithm for comparing the areas under correlated
receiver operating characteristic curves", IEEE Signal Processing Letters
21(11):1389-1393, doi:10.1109/LSP.2014.2337313 (their eqs. 9-12): with T_Z the
midranks in the pooled sample and T_X, T_Y the midranks within each class,
V10(X_i) = (T_Z(X_i) - T_X(X_i)) / n and V01(Y_j) = 1 - (T_Z(Y_j) - T_Y(Y_j)) / m.
Midranks come from :func:`scipy.stats.rankdata` (``method="average"``).

The confidence interval is the Wald interval AUC ± z·SE, cut to [0, 1] as pROC's
``ci.auc`` does, because an AUC outside [0, 1] is meaningless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm, rankdata


@dataclass(frozen=True)
class AucEstimate:
    """ROC AUC with DeLong's variance and a Wald confidence interval."""

    auc: float
    variance: float
    lower: float
    upper: float
    level: float

    @property
    def standard_error(self) -> float:
        """Square root of the variance."""
        return math.sqrt(self.variance)


@dataclass(frozen=True)
class PlacementValues:
    """DeLong's structural components: one value per positive (V10) and per negative (V01)."""

    v10: npt.NDArray[np.float64]
    v01: npt.NDArray[np.float64]


def placement_values(
    positives: npt.ArrayLike, negatives: npt.ArrayLike
) -> PlacementValues:
    """The structural components V10, V01 (DeLong 1988) via midranks (Sun & Xu 2014, eqs. 9-12)."""
    x = np.asarray(positives, dtype=np.float64)
    y = np.asarray(negatives, dtype=np.float64)
    m, n = x.size, y.size
    if m == 0 or n == 0:
        raise ValueError("placement values need at least one positive and one negative score")
    pooled = rankdata(np.concatenate([x, y]), method="average")
    tx = rankdata(x, method="average")
    ty = rankdata(y, method="average")
    v10 = (pooled[:m] - tx) / n
    v01 = 1.0 - (pooled[m:] - ty) / m
    return PlacementValues(v10=np.asarray(v10, dtype=np.float64), v01=np.asarray(v01, dtype=np.float64))


def delong_variance(values: PlacementValues) -> float:
    """DeLong's variance of the AUC: S10/m + S01/n (sample variances, denominators m-1, n-1).

    With a single positive or negative the corresponding sample variance is undefined
    and the result is NaN.
    """
    m, n = values.v10.size, values.v01.size
    s10 = float(np.var(values.v10, ddof=1)) if m > 1 else math.nan
    s01 = float(np.var(values.v01, ddof=1)) if n > 1 else math.nan
    return s10 / m + s01 / n


def delong_auc(y_true: npt.ArrayLike, scores: npt.ArrayLike, *, level: float = 0.95) -> AucEstimate:
    """ROC AUC, DeLong's variance and the ``level`` Wald interval for binary labels (1 = positive).

    The AUC is the mean of V10 (the Mann-Whitney statistic), equal to
    :func:`sklearn.metrics.roc_auc_score` on the same data.
    """
    if not 0.0 < level < 1.0:
        raise ValueError("confidence level must be between 0 and 1")
    labels = np.asarray(y_true)
    values = np.asarray(scores, dtype=np.float64)
    if labels.shape != values.shape or labels.ndim != 1:
        raise ValueError("labels and scores must be one-dimensional and of the same length")
    pv = placement_values(values[labels == 1], values[labels != 1])
    auc = float(np.mean(pv.v10))
    variance = delong_variance(pv)
    half = float(norm.ppf(0.5 + level / 2.0)) * math.sqrt(variance)
    if math.isnan(half):
        # One positive or one negative: no variance estimate, so no interval.
        return AucEstimate(auc=auc, variance=variance, lower=math.nan, upper=math.nan, level=level)
    return AucEstimate(
        auc=auc, variance=variance, lower=max(0.0, auc - half), upper=min(1.0, auc + half), level=level
    )
