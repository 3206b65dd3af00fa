"""Settings of live model monitoring (``[monitoring]`` in radai.toml).

Kept free of numerical imports because :mod:`radai.config` loads it at start-up. An
example::

    [monitoring]
    interval_seconds = 300
    site_by = "institution"          # or "calling_ae", or "none"
    suspend_on = ["defect_rate"]      # automatic suspension (default: none)

    [[monitoring.windows]]
    name = "7d"
    days = 7

    [[monitoring.windows]]
    name = "last-200"
    studies = 200

    [monitoring.thresholds]
    score_psi = 0.25                  # alert when the score PSI exceeds 0.25
    sensitivity_lower = 0.7           # alert when the Wilson lower bound falls below 0.7

    off = ["ppv_lower"]               # checks switched off

    [monitoring.webhook]
    url = "https://alerts.example/radai"
"""

from __future__ import annotations

import enum
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class Metric(enum.StrEnum):
    """Monitored quantities that can open an alert (a fixed vocabulary: alert rows,
    webhook payloads, logs and settings use these names).

    Each metric is compared with its threshold in one direction, :data:`DIRECTION`.
    """

    #: Population stability index of a finding's scores against the reference.
    SCORE_PSI = "score_psi"
    #: p-value of the two-sample Kolmogorov-Smirnov test of a finding's scores.
    SCORE_KS_PVALUE = "score_ks_pvalue"
    #: PSI of a categorical input attribute's frequencies (manufacturer, body part, sex).
    INPUT_PSI = "input_psi"
    #: p-value of the chi-square test of a categorical input attribute's frequencies.
    INPUT_CHI2_PVALUE = "input_chi2_pvalue"
    #: p-value of the two-sample KS test of a numeric input attribute (pixel spacing, rows,
    #: columns, patient age).
    INPUT_KS_PVALUE = "input_ks_pvalue"
    #: Share of ended tasks that are technical defects (point estimate).
    DEFECT_RATE = "defect_rate"
    #: Lower bound of the Wilson interval of sensitivity estimated from verdicts.
    SENSITIVITY_LOWER = "sensitivity_lower"
    #: Lower bound of the Wilson interval of specificity estimated from verdicts.
    SPECIFICITY_LOWER = "specificity_lower"
    #: Lower bound of the Wilson interval of the positive predictive value.
    PPV_LOWER = "ppv_lower"
    #: 95th percentile of the end-to-end latency (last instance received → result stored).
    END_TO_END_P95_SECONDS = "end_to_end_p95_seconds"


#: ``above``: an alert opens when the value exceeds the threshold; ``below``: when it
#: falls under it.
DIRECTION: dict[Metric, Literal["above", "below"]] = {
    Metric.SCORE_PSI: "above",
    Metric.SCORE_KS_PVALUE: "below",
    Metric.INPUT_PSI: "above",
    Metric.INPUT_CHI2_PVALUE: "below",
    Metric.INPUT_KS_PVALUE: "below",
    Metric.DEFECT_RATE: "above",
    Metric.SENSITIVITY_LOWER: "below",
    Metric.SPECIFICITY_LOWER: "below",
    Metric.PPV_LOWER: "below",
    Metric.END_TO_END_P95_SECONDS: "above",
}


class Thresholds(BaseModel):
    """Alert thresholds, one per :class:`Metric`; a metric listed in ``off`` (or, from
    Python, a threshold of ``None``) is not checked.

    Defaults and why:

    - ``score_psi`` 0.25 and ``input_psi`` 0.25: the usual reading of the population
      stability index is < 0.1 no shift, 0.1-0.25 moderate, > 0.25 significant shift
      (Siddiqi 2006, *Credit Risk Scorecards*, ch. 8; Yurdakul 2018, PhD thesis, Western
      Michigan University, on PSI's sampling distribution).
    - ``score_ks_pvalue``, ``input_chi2_pvalue`` and ``input_ks_pvalue`` 0.001: a strict
      level, because these tests are repeated for every model, attribute and window at
      every evaluation, and large windows make trivial shifts "significant".
    - ``defect_rate`` 0.10: more than one study in ten without a result (the share the
      quality gate accepts at validation, radai.quality.settings).
    - ``sensitivity_lower`` and ``specificity_lower`` 0.70: the Wilson lower bound of the
      rate estimated from radiologists' verdicts falls below 70 %; with the sample sizes
      of ``min_verdicts`` this catches a real fall well below the 80 % validation gate
      without alarming on chance.
    - ``ppv_lower``: off (PPV depends on prevalence, which varies between sites).
    - ``end_to_end_p95_seconds`` 600: one study in twenty waits more than ten minutes from
      its last instance to its stored result.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    score_psi: float | None = Field(default=0.25, gt=0)
    score_ks_pvalue: float | None = Field(default=0.001, gt=0, lt=1)
    input_psi: float | None = Field(default=0.25, gt=0)
    input_chi2_pvalue: float | None = Field(default=0.001, gt=0, lt=1)
    input_ks_pvalue: float | None = Field(default=0.001, gt=0, lt=1)
    defect_rate: float | None = Field(default=0.10, ge=0, lt=1)
    sensitivity_lower: float | None = Field(default=0.70, gt=0, le=1)
    specificity_lower: float | None = Field(default=0.70, gt=0, le=1)
    ppv_lower: float | None = Field(default=None, gt=0, le=1)
    end_to_end_p95_seconds: float | None = Field(default=600.0, gt=0)
    #: Checks switched off (TOML has no null).
    off: list[Metric] = Field(default_factory=list)

    def of(self, metric: Metric) -> float | None:
        """The threshold of ``metric`` (None: not checked)."""
        metric = Metric(metric)
        if metric in self.off:
            return None
        value: float | None = getattr(self, metric.value)
        return value


class Window(BaseModel):
    """A rolling window: the last ``days`` days, or the last ``studies`` ended tasks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Short name used in alerts and the API (lower-case letters, digits, ``-``, ``_``).
    name: str
    days: float | None = Field(default=None, gt=0, le=3660)
    studies: int | None = Field(default=None, ge=1, le=1_000_000)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-32 lower-case letters, digits, '-' or '_'")
        return value

    @model_validator(mode="after")
    def _one_size(self) -> Window:
        if (self.days is None) == (self.studies is None):
            raise ValueError("a window has either days or studies")
        return self

    def describe(self) -> str:
        """``last 7 days`` / ``last 200 studies``."""
        if self.days is not None:
            return f"last {self.days:g} days"
        return f"last {self.studies} studies"


class ReferenceFallback(BaseModel):
    """The reference distribution of a model version that has no validation run.

    ``first``: the first ``studies`` clinical tasks the version processed (its own
    baseline when it went live). ``preceding``: the tasks that ended in the ``days``
    days before the window's first task.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["first", "preceding"] = "first"
    studies: int = Field(default=200, ge=1, le=1_000_000)
    days: float = Field(default=30.0, gt=0, le=3660)


class WebhookSettings(BaseModel):
    """Where alert notifications are POSTed as JSON (none when ``url`` is unset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    #: Sent as the ``Authorization`` header when set (e.g. ``Bearer …``).
    authorization: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: Tries per notification; the wait before try n+1 is ``retry_base_seconds * 2**(n-1)``.
    max_attempts: int = Field(default=6, ge=1, le=100)
    retry_base_seconds: float = Field(default=30.0, ge=0, le=86400)
    retry_max_seconds: float = Field(default=3600.0, ge=0, le=86400)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


def _default_windows() -> list[Window]:
    return [Window(name="7d", days=7), Window(name="last-200", studies=200)]


class MonitoringSettings(BaseModel):
    """``[monitoring]``: windows, thresholds, suspension, notifications, samples."""

    model_config = ConfigDict(extra="forbid")

    #: Run the periodic evaluation inside ``radai serve``.
    enabled: bool = True
    #: Seconds between evaluations.
    interval_seconds: float = Field(default=300.0, gt=0, le=86400)
    windows: list[Window] = Field(default_factory=_default_windows, min_length=1)
    #: Evaluate per site as well as over all sites: the series' InstitutionName
    #: (``institution``) or the calling AE title that sent it (``calling_ae``).
    site_by: Literal["none", "institution", "calling_ae"] = "none"
    #: Defect rates, latency and the KS / chi-square drift tests are judged only over at
    #: least this many ended tasks in the window ...
    min_studies: int = Field(default=30, ge=1)
    #: ... and the drift tests only against a reference of at least this many studies.
    min_reference_studies: int = Field(default=10, ge=2)
    #: PSI is judged only with this many studies on each side: below about 100, its
    #: sampling noise alone approaches 0.25 (radai.monitoring.drift).
    min_psi_studies: int = Field(default=100, ge=2)
    #: Agreement thresholds are judged only when the rate's denominator has this many.
    min_verdicts: int = Field(default=20, ge=1)
    #: Equal-width bins over 0..1 for the score PSI.
    psi_bins: int = Field(default=10, ge=2, le=100)
    reference: ReferenceFallback = Field(default_factory=ReferenceFallback)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    #: Metrics whose alert suspends the model version (registry state SUSPENDED).
    suspend_on: list[Metric] = Field(default_factory=list)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    #: Days of history the dashboard plots (agreement, positive and defect rates per day).
    dashboard_days: int = Field(default=30, ge=1, le=3660)
    #: Default size of a monitoring sample.
    sample_size: int = Field(default=80, ge=1, le=100_000)
    #: Ended tasks whose inputs are profiled per evaluation (reading file headers).
    profile_batch: int = Field(default=500, ge=1, le=100_000)

    @model_validator(mode="after")
    def _unique_windows(self) -> MonitoringSettings:
        names = [w.name for w in self.windows]
        if len(set(names)) != len(names):
            raise ValueError("window names must be unique")
        return self

    def window(self, name: str) -> Window:
        """The window called ``name``; KeyError if there is none."""
        for w in self.windows:
            if w.name == name:
                return w
        raise KeyError(name)
