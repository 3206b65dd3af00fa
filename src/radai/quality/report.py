"""The stand-alone HTML report of a validation run (calibration test).

One file with everything inside: styles inline, plots as base64 PNG data URIs, no
scripts, fonts or links to fetch, so it can be archived and mailed as it is. The
report shows the model and dataset it is about, the verdict of the gate with its
reasons, each finding's metrics with confidence intervals, plots, subgroup tables
and the list of technical defects. Studies appear only under the dataset's study keys
and subgroups only under the values the dataset card exposes; nothing else about a
patient is shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from radai.quality.gate import GateResult
from radai.quality.metrics import Proportion
from radai.quality.plots import finding_figure
from radai.quality.settings import GateThresholds
from radai.quality.validation import ValidationResult

TEMPLATE = "validation_report.html"


@dataclass(frozen=True)
class ModelInfo:
    """The model version under test, as its manifest names it."""

    model_id: str
    version: str
    vendor: str
    #: The licence as the manifest states it (e.g. "Apache-2.0; research use only").
    licence: str


@dataclass(frozen=True)
class DatasetInfo:
    """The frozen dataset version the model was tested on."""

    name: str
    version: str
    #: Hash of the dataset version's manifest (instance hashes + labels), hex.
    manifest_hash: str


def render_report(
    *,
    model: ModelInfo,
    dataset: DatasetInfo,
    result: ValidationResult,
    gate: GateResult,
    thresholds: GateThresholds,
    generated_at: datetime | None = None,
) -> str:
    """The report as one HTML document."""
    when = (generated_at or datetime.now(UTC)).astimezone(UTC)
    figures = {
        f.spec.code: finding_figure(f.spec, f.metrics) for f in result.findings if f.metrics is not None
    }
    return _environment().get_template(TEMPLATE).render(
        model=model,
        dataset=dataset,
        result=result,
        gate=gate,
        thresholds=thresholds,
        figures=figures,
        generated_at=when.strftime("%Y-%m-%d %H:%M:%S UTC"),
        level_pct=f"{result.level * 100:g} %",
    )


def write_report(
    path: Path,
    *,
    model: ModelInfo,
    dataset: DatasetInfo,
    result: ValidationResult,
    gate: GateResult,
    thresholds: GateThresholds,
    generated_at: datetime | None = None,
) -> None:
    """Render the report and write it to ``path``; an existing file is replaced only when done."""
    html = render_report(
        model=model, dataset=dataset, result=result, gate=gate, thresholds=thresholds,
        generated_at=generated_at,
    )
    partial = path.with_name(path.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("radai.quality", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _number
    env.filters["prop"] = _proportion
    env.filters["pct"] = _percent
    env.tests["nan"] = lambda value: isinstance(value, float) and math.isnan(value)
    return env


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value * 100:.1f} %"


def _proportion(value: Proportion) -> str:
    """E.g. ``0.850 (0.712–0.929) 34/40``; ``— 0/0`` when the denominator is 0."""
    if value.total == 0:
        return "— (0/0)"
    return (
        f"{value.estimate:.3f} ({value.lower:.3f}–{value.upper:.3f}) {value.successes}/{value.total}"
    )
