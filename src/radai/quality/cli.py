"""``radai validate``: a calibration test of a model version on a frozen dataset version.

The run happens in this process (radai.quality.runner): it starts an executor that takes
only this run's validation tasks, shows their progress, then writes the HTML report and
prints the verdict. Exit status 0 when the gate passed, 1 when it failed (or the run
could not be made), so the command can stand in a release pipeline. The run is recorded
under the actor ``cli:<OS user>`` (radai.datasets.cli.cli_actor).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from radai.app import Radai
from radai.config import Settings
from radai.datasets.cli import cli_actor
from radai.datasets.service import DatasetError, parse_ref
from radai.models.registry import parse_ref as parse_model_ref
from radai.quality.runner import RunOutcome, run_validation
from radai.quality.service import ValidationError


def run_validate(settings: Settings, *, model: str, dataset: str, report: Path | None,
                 thresholds: dict[str, Any], promote: bool, timeout: float) -> int:
    """Run the command; returns the exit status."""
    model_id, model_version = parse_model_ref(model)
    try:
        name, number = parse_ref(dataset)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console(stderr=True)
    radai = Radai(settings)
    radai.prepare()
    try:
        with Progress(TextColumn("validating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            bar = progress.add_task("studies", total=None)

            def show(ended: int, total: int) -> None:
                progress.update(bar, completed=ended, total=total)

            outcome = run_validation(radai, model_id=model_id, model_version=model_version, dataset=name,
                                     dataset_version=number, actor=cli_actor(), report_path=report,
                                     thresholds=thresholds, promote=promote, timeout_seconds=timeout,
                                     on_progress=show)
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        radai.stop()
    print_outcome(outcome, Console(highlight=False, soft_wrap=True))
    return 0 if outcome.passed else 1


def print_outcome(outcome: RunOutcome, console: Console) -> None:
    """The verdict, AUC with interval per finding, defects and where the report is."""
    r = outcome.result
    verdict = "PASSED" if outcome.passed else "FAILED"
    console.print(f"validation run {outcome.run_id}: {outcome.model_ref} on {outcome.dataset_ref} "
                  f"(manifest {outcome.manifest_sha256[:16]}…): {verdict}", markup=False)
    level = f"{r.level * 100:g} %"
    for f in r.findings:
        if f.metrics is None:
            console.print(f"  {f.spec.meaning} ({f.spec.code}): not computable — {f.not_computable}",
                          markup=False)
            continue
        auc, op = f.metrics.auc, f.metrics.at_operating_point
        interval = ("no interval" if math.isnan(auc.lower) else
                    f"{level} CI {auc.lower:.3f}–{auc.upper:.3f}")
        console.print(f"  {f.spec.meaning} ({f.spec.code}): AUC {auc.auc:.3f} ({interval}), "
                      f"sensitivity {op.sensitivity.estimate:.3f}, "
                      f"specificity {op.specificity.estimate:.3f} at threshold {op.threshold:g}; "
                      f"{f.labels.n_positive} positive, {f.labels.n_negative} negative", markup=False)
    console.print(f"  studies: {r.n_studies}, processed: {r.n_processed}, technical defects: "
                  f"{len(r.defects.defects)}", markup=False)
    for d in r.defects.defects:
        console.print(f"    {d.study_key}: {d.category.value} — {d.reason}", markup=False)
    for reason in outcome.gate.reasons:
        console.print(f"  gate: {reason}", markup=False)
    if outcome.report_path is not None:
        console.print(f"  report: {outcome.report_path}", markup=False)
    if outcome.promoted:
        console.print("  the model is now validated", markup=False)
    elif outcome.promotion_note:
        console.print(f"  {outcome.promotion_note}", markup=False)
