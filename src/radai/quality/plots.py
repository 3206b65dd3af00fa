"""Report plots as self-contained ``data:image/png;base64`` URIs (matplotlib, Agg).

Figures are made with :class:`matplotlib.figure.Figure` and its Agg canvas, never
through pyplot, so no global figure state is kept and no display is needed. PNG
metadata is left out so that a report carries no software URL and is reproducible.
"""

from __future__ import annotations

import base64
import io
import math

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from radai.quality.inputs import FindingSpec
from radai.quality.metrics import BinaryMetrics

_POSITIVE = "#c0392b"
_NEGATIVE = "#2471a3"
_NEUTRAL = "#7f8c8d"


def finding_figure(spec: FindingSpec, metrics: BinaryMetrics) -> str:
    """ROC, precision-recall, calibration and score histograms of one finding, as a PNG data URI."""
    fig = Figure(figsize=(10.0, 8.0), dpi=90)
    FigureCanvasAgg(fig)
    (roc_ax, pr_ax), (cal_ax, hist_ax) = fig.subplots(2, 2)
    # A fixed layout: constrained layout measures every label again and doubles the time.
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.07, top=0.92, wspace=0.25, hspace=0.3)
    _roc(roc_ax, metrics)
    _pr(pr_ax, metrics)
    _calibration(cal_ax, metrics)
    _histograms(hist_ax, metrics, spec.threshold)
    fig.suptitle(f"{spec.meaning} ({spec.code})")
    return _data_uri(fig)


def _roc(ax: Axes, m: BinaryMetrics) -> None:
    auc = m.auc
    pct = round(auc.level * 100)
    if math.isnan(auc.lower):
        label = f"AUC {auc.auc:.3f} ({pct} % CI not computable)"
    else:
        label = f"AUC {auc.auc:.3f} ({pct} % CI {auc.lower:.3f}–{auc.upper:.3f}, DeLong)"
    ax.plot([0, 1], [0, 1], color=_NEUTRAL, linestyle=":", linewidth=1)
    ax.plot(m.roc.fpr, m.roc.tpr, color=_NEGATIVE, label=label)
    op, yd = m.at_operating_point, m.at_youden
    ax.plot(1 - op.specificity.estimate, op.sensitivity.estimate, "o", color=_POSITIVE,
            label=f"operating point (t = {op.threshold:.3f})")
    ax.plot(1 - yd.specificity.estimate, yd.sensitivity.estimate, "s", color="#27ae60", fillstyle="none",
            markersize=9, label=f"Youden point (t = {yd.threshold:.3f}, J = {yd.youden_j:.3f})")
    _unit_axes(ax, "1 − specificity (false positive rate)", "sensitivity (true positive rate)")
    ax.set_title("ROC curve")
    ax.legend(loc="lower right", fontsize=8)


def _pr(ax: Axes, m: BinaryMetrics) -> None:
    prevalence = m.n_positive / (m.n_positive + m.n_negative)
    ax.axhline(prevalence, color=_NEUTRAL, linestyle=":", linewidth=1, label=f"prevalence {prevalence:.3f}")
    ax.step(m.pr.recall, m.pr.precision, where="post", color=_NEGATIVE,
            label=f"average precision {m.average_precision:.3f}")
    _unit_axes(ax, "recall (sensitivity)", "precision (PPV)")
    ax.set_title("Precision–recall curve")
    ax.legend(loc="lower left", fontsize=8)


def _calibration(ax: Axes, m: BinaryMetrics) -> None:
    cal = m.calibration
    ax.plot([0, 1], [0, 1], color=_NEUTRAL, linestyle=":", linewidth=1, label="perfect calibration")
    ax.plot(cal.prob_pred, cal.prob_true, "o-", color=_NEGATIVE, label=f"model (Brier {m.brier:.3f})")
    for x, y, n in zip(cal.prob_pred, cal.prob_true, cal.counts, strict=True):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7, color=_NEUTRAL)
    _unit_axes(ax, f"mean predicted probability ({cal.n_bins} equal bins)", "observed fraction positive")
    ax.set_title("Calibration (reliability diagram)")
    ax.legend(loc="upper left", fontsize=8)


def _histograms(ax: Axes, m: BinaryMetrics, threshold: float) -> None:
    bins = [i / 20 for i in range(21)]
    ax.hist(m.negative_scores, bins=bins, alpha=0.6, color=_NEGATIVE, label=f"absent (n = {m.n_negative})")
    ax.hist(m.positive_scores, bins=bins, alpha=0.6, color=_POSITIVE, label=f"present (n = {m.n_positive})")
    ax.axvline(threshold, color="black", linestyle="--", lw=1, label=f"operating point {threshold:.3f}")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("model probability")
    ax.set_ylabel("studies")
    ax.set_title("Scores by true class")
    ax.legend(loc="upper right", fontsize=8)


def _unit_axes(ax: Axes, xlabel: str, ylabel: str) -> None:
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, linewidth=0.3)


def _data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    # metadata=None entries drop matplotlib's default "Software" text chunk (a URL).
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
