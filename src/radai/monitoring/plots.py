"""Dashboard plots of one model version as a self-contained PNG data URI (matplotlib, Agg).

One figure per version, eight panels: agreement over time (sensitivity and specificity
per day with Wilson intervals), positive and defect rates per day, the score histogram
of the primary window against the reference, defects by category, latency percentiles
per stage, score and input PSI against their threshold, and the p-values of the KS and
chi-square tests against theirs. Figures are built with :class:`matplotlib.figure.Figure`
(no pyplot state) and PNG metadata is left out.
"""

from __future__ import annotations

import base64
import io
import math

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from radai.monitoring.evaluation import DayPoint, WindowReport
from radai.monitoring.latency import STAGES
from radai.monitoring.service import VersionReport
from radai.monitoring.settings import Metric, MonitoringSettings

_RED = "#c0392b"
_BLUE = "#2471a3"
_GREEN = "#27ae60"
_GREY = "#7f8c8d"


def version_figure(report: VersionReport, settings: MonitoringSettings) -> str:
    """The eight panels of a version (its first window over all sites), as a PNG data URI."""
    window = report.windows[0]
    fig = Figure(figsize=(12.0, 15.0), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 2)
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.04, top=0.95, wspace=0.3, hspace=0.5)
    _agreement(axes[0][0], report.days)
    _rates(axes[0][1], report.days)
    _histogram(axes[1][0], window)
    _defects(axes[1][1], window)
    _latency(axes[2][0], window)
    _psi(axes[2][1], window, settings)
    _pvalues(axes[3][0], window, settings)
    _positives(axes[3][1], report.windows)
    fig.suptitle(f"{report.model_id} {report.model_version} — {window.window.describe()}")
    return _data_uri(fig)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", color=_GREY, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _agreement(ax: Axes, days: tuple[DayPoint, ...]) -> None:
    ax.set_title("Agreement with radiologists per day")
    codes = sorted({c for d in days for c in d.agreement})
    if not codes:
        _empty(ax, "no signed reports yet")
        return
    code = codes[0]
    for name, color, offset in (("sensitivity", _RED, -0.1), ("specificity", _BLUE, 0.1)):
        xs, ys, lo, hi = [], [], [], []
        for i, d in enumerate(days):
            a = d.agreement.get(code)
            rate = getattr(a, name) if a is not None else None
            if rate is None or rate.total == 0:
                continue
            xs.append(i + offset)
            ys.append(rate.estimate)
            lo.append(max(0.0, rate.estimate - rate.lower))
            hi.append(max(0.0, rate.upper - rate.estimate))
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=color, capsize=2, label=name)
    _day_axis(ax, days)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_ylabel(f"{code} (95 % Wilson CI)", fontsize=8)


def _day_axis(ax: Axes, days: tuple[DayPoint, ...]) -> None:
    step = max(1, len(days) // 8)
    ticks = list(range(0, len(days), step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([days[i].day.strftime("%m-%d") for i in ticks], fontsize=8)


def _rates(ax: Axes, days: tuple[DayPoint, ...]) -> None:
    ax.set_title("Positive and defect rates per day")
    if not days:
        _empty(ax, "no studies in the period")
        return
    xs = list(range(len(days)))
    defect = [d.n_defects / d.n_tasks if d.n_tasks else math.nan for d in days]
    ax.plot(xs, defect, "s-", color=_GREY, label="technical defects")
    for code, color in zip(sorted({c for d in days for c in d.positives})[:3], (_RED, _GREEN, _BLUE),
                           strict=False):
        rate = [d.positives[code][0] / d.positives[code][1] if code in d.positives else math.nan
                for d in days]
        ax.plot(xs, rate, "o-", color=color, label=f"positive {code}")
    _day_axis(ax, days)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="upper left", fontsize=7)


def _histogram(ax: Axes, w: WindowReport) -> None:
    ax.set_title("Scores: window vs reference")
    drift = next((f for f in w.findings if f.drift.psi is not None), None)
    if drift is None or drift.drift.psi is None:
        _empty(ax, "no scores to compare")
        return
    psi = drift.drift.psi
    xs = list(range(len(psi.bins)))
    ax.bar([x - 0.2 for x in xs], psi.reference_share, width=0.4, color=_BLUE,
           label=f"reference ({w.reference.label}, n={psi.n_reference})")
    ax.bar([x + 0.2 for x in xs], psi.current_share, width=0.4, color=_RED,
           label=f"window (n={psi.n_current})")
    ax.set_xticks(xs)
    ax.set_xticklabels(psi.bins, rotation=45, fontsize=7)
    ks = drift.drift.ks
    ks_text = f", KS D={ks.statistic:.2f} p={ks.pvalue:.2g}" if ks is not None else ""
    ax.set_xlabel(f"{drift.code} probability — PSI {psi.value:.2f}{ks_text}", fontsize=8)
    ax.set_ylabel("share of studies")
    ax.legend(fontsize=7)


def _defects(ax: Axes, w: WindowReport) -> None:
    ax.set_title(f"Technical defects by category ({w.defect_rate.successes}/{w.n_tasks})")
    if not w.defects_by_category:
        _empty(ax, "no technical defects")
        return
    names = list(w.defects_by_category)
    ax.barh(names, [w.defects_by_category[n] for n in names], color=_GREY)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("tasks")


def _latency(ax: Axes, w: WindowReport) -> None:
    ax.set_title("Latency percentiles (seconds)")
    stages = [s for s in STAGES if w.latency[s].count]
    if not stages:
        _empty(ax, "no finished tasks")
        return
    for i, (p, color) in enumerate(zip((50, 90, 95, 99), (_GREEN, _BLUE, _RED, _GREY), strict=True)):
        values = [max(w.latency[s].percentile(p) / 1000.0, 1e-3) for s in stages]
        ax.bar([x + (i - 1.5) * 0.2 for x in range(len(stages))], values, width=0.2, color=color,
               label=f"p{p}")
    ax.set_yscale("log")
    ax.set_xticks(list(range(len(stages))))
    ax.set_xticklabels([s.replace("_", " ") for s in stages], fontsize=8)
    ax.legend(fontsize=7)


def _psi(ax: Axes, w: WindowReport, settings: MonitoringSettings) -> None:
    ax.set_title("Population stability index")
    names, values = [], []
    for f in w.findings:
        if f.drift.psi is not None:
            names.append(f"score {f.code}")
            values.append(f.drift.psi.value)
    for d in w.inputs:
        if d.psi is not None:
            names.append(d.label)
            values.append(d.psi.value)
    if not names:
        _empty(ax, "nothing to compare")
        return
    threshold = settings.thresholds.of(Metric.SCORE_PSI)
    colors = [_RED if threshold is not None and v > threshold else _BLUE for v in values]
    ax.barh(names, values, color=colors)
    if threshold is not None:
        ax.axvline(threshold, color=_RED, linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        ax.legend(fontsize=7)
    ax.tick_params(axis="y", labelsize=8)


def _pvalues(ax: Axes, w: WindowReport, settings: MonitoringSettings) -> None:
    ax.set_title("Test p-values (KS, chi-square), −log10")
    names, values = [], []
    for f in w.findings:
        if f.drift.ks is not None:
            names.append(f"KS score {f.code}")
            values.append(f.drift.ks.pvalue)
    for d in w.inputs:
        test = d.ks or d.chi2
        if test is not None:
            names.append(f"{'KS' if d.ks else 'χ²'} {d.label}")
            values.append(test.pvalue)
    if not names:
        _empty(ax, "nothing to compare")
        return
    threshold = settings.thresholds.of(Metric.SCORE_KS_PVALUE)
    logs = [-math.log10(max(v, 1e-300)) for v in values]
    colors = [_RED if threshold is not None and v < threshold else _BLUE for v in values]
    ax.barh(names, logs, color=colors)
    if threshold is not None:
        ax.axvline(-math.log10(threshold), color=_RED, linestyle="--", linewidth=1,
                   label=f"p = {threshold:g}")
        ax.legend(fontsize=7)
    ax.tick_params(axis="y", labelsize=8)


def _positives(ax: Axes, windows: tuple[WindowReport, ...]) -> None:
    ax.set_title("Positive rate per window (95 % Wilson CI)")
    rows = [(f"{w.window.name}{' ' + w.site if w.site else ''} {f.code}", f.positive_rate)
            for w in windows for f in w.findings if f.positive_rate.total]
    if not rows:
        _empty(ax, "no scored studies")
        return
    rows = rows[:12]
    ys = list(range(len(rows)))
    est = [p.estimate for _, p in rows]
    err = [[max(0.0, p.estimate - p.lower) for _, p in rows],
           [max(0.0, p.upper - p.estimate) for _, p in rows]]
    ax.errorbar(est, ys, xerr=err, fmt="o", color=_RED, capsize=2)
    ax.set_yticks(ys)
    ax.set_yticklabels([name for name, _ in rows], fontsize=7)
    ax.set_xlim(-0.02, 1.02)


def _data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
