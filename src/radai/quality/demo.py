"""The demo's calibration test: pneumonia-peds on the frozen demo dataset ``pneumonia-peds-16``.

It goes through ``radai validate``'s own code (radai.quality.runner) with the default
gate thresholds, writes the report to ``<data dir>/reports/`` and prints its path and
each finding's ROC AUC with its confidence interval. Sixteen studies make wide
intervals: the gate is expected to fail on the AUC's lower bound, which is the point
of showing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from radai.datasets.demo import NAME as DATASET
from radai.quality.cli import print_outcome
from radai.quality.runner import RunOutcome, run_validation

if TYPE_CHECKING:
    from radai.app import Radai

MODEL = "pneumonia-peds"


def run_demo_validation(radai: Radai, console: Console | None = None) -> RunOutcome:
    """Validate the pneumonia model on ``pneumonia-peds-16`` version 1 and print the outcome."""
    out = console or Console(highlight=False, soft_wrap=True)
    record = radai.models.get(MODEL)
    report = radai.settings.data_dir / "reports" / f"validation-{MODEL}-{record.version}-on-{DATASET}-1.html"
    with out.status(f"validation run: {record.ref} on {DATASET}@1"):
        outcome = run_validation(radai, model_id=MODEL, model_version=record.version, dataset=DATASET,
                                 dataset_version=1, actor="radai demo", report_path=report,
                                 timeout_seconds=1800)
    print_outcome(outcome, out)
    return outcome
