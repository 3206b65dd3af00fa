"""API types of monitoring (``/api/v1/monitoring``; snake_case JSON).

Rates that cannot be computed (an empty denominator) are ``null``, never NaN (JSON
has no NaN).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from radai.monitoring.agreement import Agreement
from radai.monitoring.drift import PsiResult, TestResult
from radai.monitoring.evaluation import Check, FindingMonitor, InputDrift, Reference, WindowReport
from radai.monitoring.latency import LatencySummary
from radai.monitoring.models import Alert, MonitoringSample
from radai.monitoring.samples import SampleReport
from radai.monitoring.service import VersionReport
from radai.quality.metrics import Proportion


def _num(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else float(value)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProportionOut(_Out):
    """A proportion with its Wilson score interval (null when the denominator is 0)."""

    successes: int
    total: int
    estimate: float | None
    lower: float | None
    upper: float | None

    @classmethod
    def of(cls, p: Proportion) -> ProportionOut:
        """The API view of a proportion."""
        return cls(successes=p.successes, total=p.total, estimate=_num(p.estimate), lower=_num(p.lower),
                   upper=_num(p.upper))


class AgreementOut(_Out):
    """Agreement with radiologists' verdicts (radai.monitoring.agreement)."""

    tp: int
    fp: int
    tn: int
    fn: int
    uncertain: int
    unreviewed: int
    sensitivity: ProportionOut
    specificity: ProportionOut
    ppv: ProportionOut
    npv: ProportionOut

    @classmethod
    def of(cls, a: Agreement) -> AgreementOut:
        """The API view of an agreement."""
        c = a.counts
        return cls(tp=c.tp, fp=c.fp, tn=c.tn, fn=c.fn, uncertain=c.uncertain, unreviewed=c.unreviewed,
                   sensitivity=ProportionOut.of(a.sensitivity), specificity=ProportionOut.of(a.specificity),
                   ppv=ProportionOut.of(a.ppv), npv=ProportionOut.of(a.npv))


class PsiOut(_Out):
    """A population stability index and the shares of its bins."""

    value: float
    bins: list[str]
    reference_share: list[float]
    current_share: list[float]
    n_reference: int
    n_current: int

    @classmethod
    def of(cls, p: PsiResult | None) -> PsiOut | None:
        """The API view of a PSI (None stays None)."""
        if p is None:
            return None
        return cls(value=p.value, bins=list(p.bins), reference_share=list(p.reference_share),
                   current_share=list(p.current_share), n_reference=p.n_reference, n_current=p.n_current)


class TestOut(_Out):
    """A two-sample test (KS or chi-square)."""

    statistic: float
    pvalue: float
    n_reference: int
    n_current: int

    @classmethod
    def of(cls, t: TestResult | None) -> TestOut | None:
        """The API view of a test (None stays None)."""
        if t is None:
            return None
        return cls(statistic=t.statistic, pvalue=t.pvalue, n_reference=t.n_reference, n_current=t.n_current)


class ScoreDriftOut(_Out):
    """Drift of a finding's scores against the reference."""

    psi: PsiOut | None
    ks: TestOut | None
    note: str


class FindingOut(_Out):
    """One finding code in one window."""

    code: str
    meaning: str
    n: int
    positive_rate: ProportionOut
    mean_probability: float | None
    drift: ScoreDriftOut
    agreement: AgreementOut

    @classmethod
    def of(cls, f: FindingMonitor) -> FindingOut:
        """The API view of a finding's monitoring."""
        return cls(code=f.code, meaning=f.meaning, n=f.n, positive_rate=ProportionOut.of(f.positive_rate),
                   mean_probability=_num(f.mean_probability),
                   drift=ScoreDriftOut(psi=PsiOut.of(f.drift.psi), ks=TestOut.of(f.drift.ks),
                                       note=f.drift.note),
                   agreement=AgreementOut.of(f.agreement))


class InputDriftOut(_Out):
    """Drift of one input attribute."""

    attribute: str
    label: str
    kind: Literal["categorical", "numeric"]
    n_current: int
    n_reference: int
    psi: PsiOut | None
    chi2: TestOut | None
    ks: TestOut | None
    summary: str
    note: str

    @classmethod
    def of(cls, d: InputDrift) -> InputDriftOut:
        """The API view of an input attribute's drift."""
        return cls(attribute=d.attribute, label=d.label, kind=d.kind,
                   n_current=d.n_current, n_reference=d.n_reference, psi=PsiOut.of(d.psi),
                   chi2=TestOut.of(d.chi2), ks=TestOut.of(d.ks), summary=d.summary, note=d.note)


class LatencyOut(_Out):
    """Milliseconds of one stage: count, mean and percentiles (null when no task)."""

    count: int
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @classmethod
    def of(cls, s: LatencySummary) -> LatencyOut:
        """The API view of a latency summary."""
        return cls(count=s.count, mean_ms=_num(s.mean_ms), p50_ms=_num(s.p50_ms), p90_ms=_num(s.p90_ms),
                   p95_ms=_num(s.p95_ms), p99_ms=_num(s.p99_ms))


class CheckOut(_Out):
    """One metric against its threshold."""

    metric: str
    subject: str
    value: float | None
    threshold: float | None
    direction: Literal["above", "below"]
    sample_size: int
    evaluated: bool
    breached: bool
    note: str

    @classmethod
    def of(cls, c: Check) -> CheckOut:
        """The API view of a check."""
        return cls(metric=c.metric.value, subject=c.subject, value=_num(c.value), threshold=c.threshold,
                   direction=c.direction, sample_size=c.sample_size,
                   evaluated=c.evaluated, breached=c.breached, note=c.note)


class ReferenceOut(_Out):
    """What the window is compared with."""

    kind: Literal["validation_run", "first", "preceding", "none"]
    label: str
    n: int
    validation_run_id: int | None

    @classmethod
    def of(cls, r: Reference) -> ReferenceOut:
        """The API view of a reference."""
        return cls(kind=r.kind, label=r.label, n=len(r.tasks),
                   validation_run_id=r.validation_run_id)


class WindowOut(_Out):
    """One model version × site × window."""

    window: str
    description: str
    #: "" for all sites together.
    site: str
    start: datetime | None
    end: datetime | None
    n_tasks: int
    n_done: int
    defect_rate: ProportionOut
    defects_by_category: dict[str, int]
    findings: list[FindingOut]
    inputs: list[InputDriftOut]
    latency: dict[str, LatencyOut]
    reference: ReferenceOut
    checks: list[CheckOut]

    @classmethod
    def of(cls, w: WindowReport) -> WindowOut:
        """The API view of a window report."""
        return cls(window=w.window.name, description=w.window.describe(), site=w.site, start=w.start,
                   end=w.end, n_tasks=w.n_tasks, n_done=w.n_done, defect_rate=ProportionOut.of(w.defect_rate),
                   defects_by_category=w.defects_by_category, findings=[FindingOut.of(f) for f in w.findings],
                   inputs=[InputDriftOut.of(d) for d in w.inputs],
                   latency={k: LatencyOut.of(v) for k, v in w.latency.items()},
                   reference=ReferenceOut.of(w.reference), checks=[CheckOut.of(c) for c in w.checks])


class VersionOut(_Out):
    """Monitoring of one model version."""

    model_id: str
    model_version: str
    state: str
    evaluated_at: datetime
    sites: list[str]
    windows: list[WindowOut]

    @classmethod
    def of(cls, r: VersionReport) -> VersionOut:
        """The API view of a version report."""
        return cls(model_id=r.model_id, model_version=r.model_version, state=r.state,
                   evaluated_at=r.evaluated_at, sites=list(r.sites),
                   windows=[WindowOut.of(w) for w in r.windows])


class AlertOut(_Out):
    """A threshold breach of a model version."""

    id: int
    model_id: str
    model_version: str
    site: str
    window: str
    metric: str
    subject: str
    direction: str
    value: float
    threshold: float
    last_value: float
    sample_size: int
    state: Literal["open", "closed"]
    opened_at: datetime
    closed_at: datetime | None
    last_evaluated_at: datetime
    action: str

    @classmethod
    def of(cls, a: Alert) -> AlertOut:
        """The API view of an alert row."""
        return cls(id=a.id, model_id=a.model_id, model_version=a.model_version, site=a.site, window=a.window,
                   metric=a.metric, subject=a.subject, direction=a.direction, value=a.value,
                   threshold=a.threshold, last_value=a.last_value, sample_size=a.sample_size,
                   state=a.state, opened_at=a.opened_at, closed_at=a.closed_at,
                   last_evaluated_at=a.last_evaluated_at, action=a.action)


class ModelMonitoringOut(_Out):
    """``GET /api/v1/monitoring/models/{id}``: every version's windows and open alerts."""

    model_id: str
    versions: list[VersionOut]
    open_alerts: list[AlertOut]


class RoundOut(_Out):
    """What an evaluation round did (``POST /api/v1/monitoring/evaluate``)."""

    profiled: int
    versions: list[str]
    opened: list[AlertOut]
    closed: list[AlertOut]
    suspended: list[str]
    notified: int


class SampleCreate(BaseModel):
    """``POST /api/v1/monitoring/samples``: draw a sample of a model version's studies."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=64)
    model_version: str = Field(min_length=1, max_length=32)
    period_start: datetime
    period_end: datetime
    #: Studies to draw (default: ``monitoring.sample_size``, 80).
    size: int | None = Field(default=None, ge=1, le=100_000)
    #: Seed of the random draw; chosen at random (and returned) when left out.
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    method: Literal["simple", "stratified"] = "simple"
    #: Usernames of the radiologists who review the studies (assigned in turn).
    readers: list[str] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _aware(self) -> SampleCreate:
        for name in ("period_start", "period_end"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"{name} needs a time zone (e.g. 2025-01-01T00:00:00Z)")
        return self


class SampledStudyOut(_Out):
    """One drawn study."""

    position: int
    study_instance_uid: str
    reader: str
    stratum: str
    task_id: int
    reviewed: bool


class SampleAgreementOut(_Out):
    """Agreement on the sample's reviewed studies for one finding code."""

    code: str
    meaning: str
    agreement: AgreementOut


class SampleOut(_Out):
    """A monitoring sample, its studies and the agreement measured so far."""

    id: int
    model_id: str
    model_version: str
    period_start: datetime
    period_end: datetime
    method: str
    seed: int
    size_requested: int
    eligible: int
    size_drawn: int
    created_by: str
    created_at: datetime
    reviewed: int
    studies: list[SampledStudyOut]
    agreement: list[SampleAgreementOut]

    @classmethod
    def of(cls, r: SampleReport) -> SampleOut:
        """The API view of a sample report."""
        s: MonitoringSample = r.sample
        return cls(
            id=s.id, model_id=s.model_id, model_version=s.model_version, period_start=s.period_start,
            period_end=s.period_end, method=s.method, seed=s.seed, size_requested=s.size_requested,
            eligible=s.eligible, size_drawn=s.size_drawn, created_by=s.created_by, created_at=s.created_at,
            reviewed=r.reviewed,
            studies=[SampledStudyOut(position=x.position, study_instance_uid=x.study_instance_uid,
                                     reader=x.reader, stratum=x.stratum, task_id=x.task_id,
                                     reviewed=x.reviewed) for x in r.studies],
            agreement=[SampleAgreementOut(code=f.code, meaning=f.meaning,
                                          agreement=AgreementOut.of(f.agreement)) for f in r.findings])
