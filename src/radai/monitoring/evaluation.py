"""Monitoring metrics of one model version over rolling windows, and the checks against
their thresholds.

For each window (radai.monitoring.settings.Window) and site, over the clinical tasks
that ended in it:

- technical defects: the share of ended tasks that are defects (Wilson interval) and
  their count by category (radai.models.api.DefectCategory);
- per finding code: the positive rate (Wilson interval), the mean probability, score
  drift against the reference (PSI over fixed bins, KS test: radai.monitoring.drift)
  and agreement with radiologists' verdicts (radai.monitoring.agreement);
- input drift against the reference: categorical attributes (manufacturer, body part,
  patient's sex; a missing value is the category ``(unknown)``) by PSI and chi-square,
  numeric ones (pixel spacing, rows, columns, patient's age; missing values left out)
  by the KS test;
- latency percentiles per stage (radai.monitoring.latency).

The **reference** of a version is its latest validation run (radai.quality: the
validation tasks of the run, their scores and inputs), the distribution the model was
accepted on. A version without one is compared with its own clinical history as
``[monitoring.reference]`` says: its first N studies, or the days before the window.

Each computed value becomes a :class:`Check` of a :class:`~radai.monitoring.settings.Metric`
against its threshold. A check is *evaluated* only with enough data (``min_studies``
tasks in the window and ``min_reference_studies`` in the reference for the tests,
``min_psi_studies`` on both sides for PSI, ``min_verdicts`` in a rate's denominator);
an unevaluated check neither opens nor closes an alert.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from radai.monitoring.agreement import Agreement, ReviewedCase, agreement, count_outcomes
from radai.monitoring.data import TaskRow
from radai.monitoring.drift import (
    PsiResult,
    TestResult,
    categorical_psi,
    chi_square,
    ks_test,
    score_psi,
)
from radai.monitoring.latency import LatencySummary, summarise
from radai.monitoring.settings import DIRECTION, Metric, MonitoringSettings, Window
from radai.quality.metrics import Proportion, wilson

#: Categorical input attributes (TaskRow.inputs fields) and how they are shown.
CATEGORICAL: dict[str, str] = {"manufacturer": "Manufacturer", "body_part": "Body Part Examined",
                               "patient_sex": "Patient's Sex"}
#: Numeric input attributes and how they are shown.
NUMERIC: dict[str, str] = {"pixel_spacing_mm": "Pixel Spacing (mm)", "rows": "Rows",
                           "columns": "Columns", "patient_age_years": "Patient's Age (years)"}
UNKNOWN = "(unknown)"


@dataclass(frozen=True)
class Reference:
    """The distribution a window is compared with."""

    #: ``validation_run``, ``first``, ``preceding`` or ``none``.
    kind: str
    #: For people: "validation run 3", "first 200 studies", …
    label: str
    tasks: tuple[TaskRow, ...] = ()
    validation_run_id: int | None = None


@dataclass(frozen=True)
class ScoreDrift:
    """Drift of one finding's scores; None values with a note when not computed."""

    psi: PsiResult | None
    ks: TestResult | None
    note: str = ""


@dataclass(frozen=True)
class FindingMonitor:
    """Everything measured for one finding code in one window."""

    code: str
    meaning: str
    #: Tasks with a score for this code.
    n: int
    positive_rate: Proportion
    mean_probability: float
    drift: ScoreDrift
    agreement: Agreement


@dataclass(frozen=True)
class InputDrift:
    """Drift of one input attribute."""

    attribute: str
    label: str
    #: ``categorical`` or ``numeric``.
    kind: str
    n_current: int
    n_reference: int
    psi: PsiResult | None = None
    chi2: TestResult | None = None
    ks: TestResult | None = None
    #: Most frequent categories (categorical) or the median (numeric) of the window.
    summary: str = ""
    note: str = ""


@dataclass(frozen=True)
class Check:
    """One metric against its threshold."""

    metric: Metric
    #: What the metric is of: a finding code, an input attribute, or "".
    subject: str
    value: float | None
    threshold: float | None
    #: Studies or verdicts the value comes from.
    sample_size: int
    evaluated: bool
    breached: bool
    note: str = ""

    @property
    def direction(self) -> str:
        """``above`` or ``below``."""
        return DIRECTION[self.metric]


@dataclass(frozen=True)
class WindowReport:
    """One model version × site × window."""

    model_id: str
    model_version: str
    site: str
    window: Window
    evaluated_at: datetime
    #: finished_at of the first and last task in the window (None when empty).
    start: datetime | None
    end: datetime | None
    n_tasks: int
    n_done: int
    defect_rate: Proportion
    defects_by_category: dict[str, int]
    findings: tuple[FindingMonitor, ...]
    inputs: tuple[InputDrift, ...]
    latency: dict[str, LatencySummary]
    reference: Reference
    checks: tuple[Check, ...] = field(default=())

    @property
    def breaches(self) -> list[Check]:
        """The evaluated checks over their thresholds."""
        return [c for c in self.checks if c.breached]


def select_window(tasks: Sequence[TaskRow], window: Window, now: datetime) -> list[TaskRow]:
    """The tasks (sorted by ``finished_at``) that fall into ``window`` at ``now``."""
    if window.days is not None:
        since = now - timedelta(days=window.days)
        return [t for t in tasks if since <= t.finished_at <= now]
    assert window.studies is not None
    return [t for t in tasks if t.finished_at <= now][-window.studies:]


def evaluate_window(tasks: Sequence[TaskRow], *, reference: Reference,
                    reviewed: dict[tuple[int, str], ReviewedCase], settings: MonitoringSettings,
                    window: Window, site: str, model_id: str, model_version: str, now: datetime,
                    level: float = 0.95) -> WindowReport:
    """Every metric of ``tasks`` (one window's tasks) and the checks against thresholds."""
    defects = [t for t in tasks if t.is_defect]
    done = [t for t in tasks if not t.is_defect]
    by_category = Counter(t.defect_category or "unknown" for t in defects)
    findings = tuple(_finding(code, done, reference, reviewed, settings, level)
                     for code in _codes(done, reference))
    inputs = tuple(_input_drift(attr, tasks, reference, settings) for attr in (*CATEGORICAL, *NUMERIC))
    report = WindowReport(
        model_id=model_id, model_version=model_version, site=site, window=window, evaluated_at=now,
        start=tasks[0].finished_at if tasks else None, end=tasks[-1].finished_at if tasks else None,
        n_tasks=len(tasks), n_done=len(done), defect_rate=wilson(len(defects), len(tasks), level=level),
        defects_by_category=dict(sorted(by_category.items())), findings=findings, inputs=inputs,
        latency=latency_of(tasks), reference=reference)
    return _with_checks(report, settings)


def _codes(done: Sequence[TaskRow], reference: Reference) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for t in (*done, *reference.tasks):
        for sc in t.scores:
            seen.setdefault(sc.code, sc.meaning)
    return sorted(seen.items())


def _finding(code: tuple[str, str], done: Sequence[TaskRow], reference: Reference,
             reviewed: dict[tuple[int, str], ReviewedCase], settings: MonitoringSettings,
             level: float) -> FindingMonitor:
    key, meaning = code
    scores = [sc for t in done for sc in t.scores if sc.code == key]
    ref_scores = [sc.probability for t in reference.tasks if not t.is_defect
                  for sc in t.scores if sc.code == key]
    current = [sc.probability for sc in scores]
    positives = sum(1 for sc in scores if sc.positive)
    cases = [case for (_, c), case in reviewed.items() if c == key]
    return FindingMonitor(
        code=key, meaning=meaning, n=len(scores), positive_rate=wilson(positives, len(scores), level=level),
        mean_probability=float(sum(current) / len(current)) if current else math.nan,
        drift=_score_drift(ref_scores, current, settings),
        agreement=agreement(count_outcomes(cases), level=level))


def _score_drift(reference: list[float], current: list[float], settings: MonitoringSettings) -> ScoreDrift:
    if not reference:
        return ScoreDrift(None, None, "no reference scores")
    if not current:
        return ScoreDrift(None, None, "no scores in the window")
    return ScoreDrift(score_psi(reference, current, bins=settings.psi_bins), ks_test(reference, current))


def _categorical(t: TaskRow, attribute: str) -> str:
    value = str(getattr(t.inputs, attribute) or "").strip()
    return value or UNKNOWN


def _numeric(t: TaskRow, attribute: str) -> float | None:
    value = getattr(t.inputs, attribute)
    return None if value is None else float(value)


def _input_drift(attribute: str, tasks: Sequence[TaskRow], reference: Reference,
                 settings: MonitoringSettings) -> InputDrift:
    current_tasks = [t for t in tasks if t.inputs.profiled]
    ref_tasks = [t for t in reference.tasks if t.inputs.profiled]
    if attribute in CATEGORICAL:
        cur = [_categorical(t, attribute) for t in current_tasks]
        ref = [_categorical(t, attribute) for t in ref_tasks]
        summary = ", ".join(f"{k} {v}" for k, v in Counter(cur).most_common(3))
        base = InputDrift(attribute, CATEGORICAL[attribute], "categorical", len(cur), len(ref),
                          summary=summary)
        if not cur or not ref:
            return _note(base, cur, ref)
        return _replace(base, psi=categorical_psi(ref, cur), chi2=chi_square(ref, cur))
    cur_n = [v for t in current_tasks if (v := _numeric(t, attribute)) is not None]
    ref_n = [v for t in ref_tasks if (v := _numeric(t, attribute)) is not None]
    summary = f"median {sorted(cur_n)[len(cur_n) // 2]:g}" if cur_n else ""
    base = InputDrift(attribute, NUMERIC[attribute], "numeric", len(cur_n), len(ref_n), summary=summary)
    if not cur_n or not ref_n:
        return _note(base, cur_n, ref_n)
    return _replace(base, ks=ks_test(ref_n, cur_n))


def _note(base: InputDrift, cur: Sequence[object], ref: Sequence[object]) -> InputDrift:
    return _replace(base, note="no reference values" if not ref else "no values in the window")


def _replace(base: InputDrift, **changes: object) -> InputDrift:
    return replace(base, **changes)  # type: ignore[arg-type]


def _ms_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds() * 1000.0


def latency_of(tasks: Sequence[TaskRow]) -> dict[str, LatencySummary]:
    """Latency summaries per stage (radai.monitoring.latency) of ``tasks``' done tasks."""
    done = [t for t in tasks if not t.is_defect]
    return {
        "queue_wait": summarise(t.queue_wait_ms for t in done),
        "preprocess": summarise(t.preprocess_ms for t in done),
        "inference": summarise(t.inference_ms for t in done),
        "to_findings": summarise(_ms_between(t.inputs.last_input_received_at, t.finished_at) for t in done),
        "end_to_end": summarise(_ms_between(t.inputs.last_input_received_at, t.result_stored_at)
                                for t in done),
    }


# --- checks -------------------------------------------------------------------------


def _check(metric: Metric, subject: str, value: float | None, n: int, enough: bool,
           settings: MonitoringSettings, why_not: str) -> Check:
    threshold = settings.thresholds.of(metric)
    if threshold is None:
        return Check(metric, subject, value, None, n, False, False, "check switched off")
    if value is None or math.isnan(value) or not enough:
        return Check(metric, subject, value, threshold, n, False, False, why_not)
    above = DIRECTION[metric] == "above"
    breached = value > threshold if above else value < threshold
    return Check(metric, subject, value, threshold, n, True, breached)


def _with_checks(r: WindowReport, settings: MonitoringSettings) -> WindowReport:
    m = settings.min_studies
    ref_n = len(r.reference.tasks)
    few = f"fewer than {m} studies in the window"
    drift_ok = ref_n >= settings.min_reference_studies
    few_ref = f"reference has fewer than {settings.min_reference_studies} studies"
    checks = [_check(Metric.DEFECT_RATE, "", r.defect_rate.estimate, r.n_tasks, r.n_tasks >= m,
                     settings, few)]
    psi_n = settings.min_psi_studies
    few_psi = f"PSI needs {psi_n} studies in the window and in the reference"
    for f in r.findings:
        enough = f.n >= m and drift_ok
        why = few if f.n < m else (few_ref if not drift_ok else f.drift.note)
        psi = f.drift.psi.value if f.drift.psi else None
        ks_p = f.drift.ks.pvalue if f.drift.ks else None
        checks.append(_check(Metric.SCORE_PSI, f.code, psi, f.n, f.n >= psi_n and ref_n >= psi_n, settings,
                             few_psi))
        checks.append(_check(Metric.SCORE_KS_PVALUE, f.code, ks_p, f.n, enough, settings, why))
        a = f.agreement
        for metric, rate in ((Metric.SENSITIVITY_LOWER, a.sensitivity),
                             (Metric.SPECIFICITY_LOWER, a.specificity), (Metric.PPV_LOWER, a.ppv)):
            checks.append(_check(metric, f.code, rate.lower, rate.total, rate.total >= settings.min_verdicts,
                                 settings, f"fewer than {settings.min_verdicts} verdicts"))
    for d in r.inputs:
        enough = d.n_current >= m and d.n_reference >= settings.min_reference_studies
        why = d.note or (few if d.n_current < m else few_ref)
        if d.kind == "categorical":
            psi_ok = d.n_current >= psi_n and d.n_reference >= psi_n
            checks.append(_check(Metric.INPUT_PSI, d.attribute, d.psi.value if d.psi else None, d.n_current,
                                 psi_ok, settings, d.note or few_psi))
            checks.append(_check(Metric.INPUT_CHI2_PVALUE, d.attribute, d.chi2.pvalue if d.chi2 else None,
                                 d.n_current, enough, settings, why))
        else:
            checks.append(_check(Metric.INPUT_KS_PVALUE, d.attribute, d.ks.pvalue if d.ks else None,
                                 d.n_current, enough, settings, why))
    e2e = r.latency["end_to_end"]
    checks.append(_check(Metric.END_TO_END_P95_SECONDS, "", e2e.p95_ms / 1000.0 if e2e.count else None,
                         e2e.count, e2e.count >= m, settings, few))
    return replace(r, checks=tuple(checks))


# --- time series for the dashboard ----------------------------------------------------


@dataclass(frozen=True)
class DayPoint:
    """One day of a model version's clinical tasks."""

    day: date
    n_tasks: int
    n_defects: int
    #: Finding code → (positives, scored).
    positives: dict[str, tuple[int, int]]
    #: Finding code → agreement of the day's reviewed studies.
    agreement: dict[str, Agreement]


def daily(tasks: Sequence[TaskRow], reviewed: dict[tuple[int, str], ReviewedCase],
          level: float = 0.95) -> list[DayPoint]:
    """Per-day counts and agreement (by the UTC day a task ended), oldest first.

    A reviewed (study, code) counts once, on the day its study's latest task ended.
    """
    by_day: dict[date, list[TaskRow]] = {}
    for t in tasks:
        by_day.setdefault(t.finished_at.date(), []).append(t)
    latest: dict[int, int] = {}
    for t in tasks:
        if t.scores:
            latest[t.study_pk] = max(latest.get(t.study_pk, t.task_pk), t.task_pk)
    out = []
    for day in sorted(by_day):
        day_tasks = by_day[day]
        positives: dict[str, list[int]] = {}
        cases: dict[str, list[ReviewedCase]] = {}
        for t in day_tasks:
            for sc in t.scores:
                pair = positives.setdefault(sc.code, [0, 0])
                pair[0] += int(sc.positive)
                pair[1] += 1
                case = reviewed.get((t.study_pk, sc.code))
                if case is not None and latest.get(t.study_pk) == t.task_pk:
                    cases.setdefault(sc.code, []).append(case)
        out.append(DayPoint(
            day=day, n_tasks=len(day_tasks), n_defects=sum(1 for t in day_tasks if t.is_defect),
            positives={k: (v[0], v[1]) for k, v in positives.items()},
            agreement={k: agreement(count_outcomes(v), level=level) for k, v in cases.items()}))
    return out
