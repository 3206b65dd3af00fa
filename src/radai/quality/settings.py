"""Settings of the quality domain: the default acceptance thresholds of validation runs.

Kept free of numerical imports because :mod:`radai.config` loads it at start-up.
Thresholds are layered: these defaults (``[quality.gate]`` in radai.toml or
``RADAI_QUALITY__GATE__MIN_SENSITIVITY=…``), then the model manifest's values, then the
command line (:func:`resolve_thresholds`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GateThresholds(BaseModel):
    """What a model must reach on a frozen dataset to pass its calibration test.

    A threshold set to ``None`` is not checked. Sensitivity, specificity and accuracy
    are compared by their point estimate or, with ``rates_on="lower_bound"``, by the
    lower bound of their Wilson interval; the AUC always by the lower bound of its
    DeLong interval.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Minimum lower confidence bound of each finding's ROC AUC.
    min_auc_lower_bound: float | None = Field(default=0.80, ge=0.0, le=1.0)
    #: Minimum sensitivity of each finding at the model's operating point.
    min_sensitivity: float | None = Field(default=0.80, ge=0.0, le=1.0)
    #: Minimum specificity of each finding at the model's operating point.
    min_specificity: float | None = Field(default=0.80, ge=0.0, le=1.0)
    #: Minimum overall accuracy of a multi-class model.
    min_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    #: Maximum share of the dataset's studies ending as technical defects.
    max_defect_rate: float | None = Field(default=0.10, ge=0.0, le=1.0)
    rates_on: Literal["estimate", "lower_bound"] = "estimate"


class QualitySettings(BaseModel):
    """The ``quality`` section of radai's settings."""

    model_config = ConfigDict(extra="forbid")

    gate: GateThresholds = Field(default_factory=GateThresholds)
    #: Confidence level of every interval in validation reports.
    confidence_level: float = Field(default=0.95, gt=0.5, lt=1.0)
    #: Number of equal-width bins of the calibration curve.
    calibration_bins: int = Field(default=10, ge=2, le=100)


def resolve_thresholds(
    defaults: GateThresholds, *layers: Mapping[str, Any] | None
) -> GateThresholds:
    """``defaults`` overridden by each layer in turn (manifest values, then command-line options).

    A key a layer leaves out keeps the earlier value; an explicit ``None`` turns the check
    off. Unknown keys and values out of range raise :class:`pydantic.ValidationError`
    (a ``ValueError``) naming the key.
    """
    values: dict[str, Any] = defaults.model_dump()
    for layer in layers:
        if layer:
            values.update(layer)
    return GateThresholds.model_validate(values)
