"""``radai demo``: load the demo data, wait until it is processed, then serve.

The demo data are real images from installed packages: the CR, CT, MR and US files of
pydicom-data. Each step reports what it did; nothing here is special-cased elsewhere —
the demo uses the same import, routing and inference paths as any site.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from rich.console import Console

from radai.app import Radai
from radai.archive.importer import ImportSummary, import_paths
from radai.config import Settings
from radai.datasets.demo import create_demo_dataset
from radai.quality.demo import run_demo_validation
from radai.worklist.demo import print_demo_users

#: Real clinical images of pydicom-data, one file per distinct instance
#: (its compressed variants repeat the same SOP Instance UIDs).
PYDICOM_DATA_FILES = (
    "RG1_UNCI.dcm",  # CR chest PA, MONOCHROME1, 1955x1841
    "RG3_UNCI.dcm",  # CR extremity
    "693_UNCI.dcm",  # CT slice
    "eCT_Supplemental.dcm",  # enhanced CT, 2 frames
    "MR2_UNCI.dcm",  # MR shoulder
    "emri_small.dcm",  # MR head, 10 frames
    "MR-SIEMENS-DICOM-WithOverlays.dcm",  # MR abdomen
    "US1_UNCI.dcm",  # ultrasound, RGB
    "OBXXXX1A.dcm",  # ultrasound, palette colour
    "JPEG2000_UNC.dcm",  # NM whole body
)


@dataclass
class DemoReport:
    """What the demo loaded."""

    imports: list[tuple[str, ImportSummary]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def pydicom_data_files() -> list[Path]:
    """Paths of the demo's pydicom-data files (the package imports as ``data_store``)."""
    root = Path(str(files("data_store") / "data"))
    return [root / name for name in PYDICOM_DATA_FILES]


def load_demo_data(radai: Radai, console: Console) -> DemoReport:
    """Import the demo studies into a running radai."""
    report = DemoReport()
    summary = import_paths(radai.archive, pydicom_data_files(), source="import")
    report.imports.append(("pydicom-data (CR, CT, MR, US, NM)", summary))
    console.print(f"imported pydicom-data: {summary.stored} stored, {summary.duplicates} already there, "
                  f"{len(summary.rejected)} rejected, {len(summary.studies)} studies")
    return report


def prepare_models(radai: Radai, console: Console) -> None:
    """Load every live model once, so that files built at first use are cached.

    The pneumonia model's Keras → ONNX export runs here the first time (a few minutes
    on a laptop CPU); later runs find it in the model cache.
    """
    from radai.models.api import ModelDefect

    for record in radai.models.live():
        with console.status(f"preparing model {record.model_id} {record.version} "
                            "(the first time, this builds and caches its runtime files)"):
            try:
                radai.models.load(record.model_id, record.version)
            except ModelDefect as exc:
                console.print(f"[red]model {record.model_id} cannot be loaded: {exc.reason}")
                continue
        console.print(f"model {record.model_id} {record.version} ready ({record.manifest.licence})",
                      highlight=False)


def _unfinished(radai: Radai) -> tuple[int, int, int]:
    """Studies not yet stable, tasks not yet ended, results not yet produced."""
    from sqlalchemy import func, select

    from radai.archive.models import Study
    from radai.inference.models import FINAL, InferenceTask
    from radai.results.models import ResultSet, ResultState

    with radai.db.session() as s:
        unstable = s.scalar(select(func.count()).select_from(Study)
                            .where(Study.stable_seq < Study.change_seq)) or 0
        tasks = s.scalar(select(func.count()).select_from(InferenceTask)
                         .where(InferenceTask.state.not_in(FINAL))) or 0
        results = s.scalar(select(func.count()).select_from(ResultSet)
                           .where(ResultSet.state == ResultState.PENDING.value)) or 0
    return unstable, tasks, results


def wait_until_processed(radai: Radai, console: Console, timeout: float) -> bool:
    """Wait until every study is stable, routed, inferred and has its result objects."""
    deadline = time.monotonic() + timeout
    with console.status("processing the demo studies") as status:
        while time.monotonic() < deadline:
            unstable, tasks, results = _unfinished(radai)
            if unstable == tasks == results == 0:
                return True
            status.update(f"processing: {unstable} studies settling, {tasks} AI tasks running, "
                          f"{results} results being written")
            time.sleep(1.0)
    console.print("[yellow]not everything is processed yet; radai goes on while it serves")
    return False


def print_processing_summary(radai: Radai, console: Console) -> None:
    """One line per study: what it is, where routing sent it and what the AI found."""
    from rich.table import Table
    from sqlalchemy import select

    from radai.archive.models import Series, Study
    from radai.inference.models import Finding, InferenceTask, TaskPurpose
    from radai.routing.models import RoutingDecision

    table = Table(title="Demo studies", show_lines=False)
    for column in ("modality", "body part", "description", "routing", "model", "AI result"):
        table.add_column(column)
    with radai.db.session() as s:
        for study in s.scalars(select(Study).order_by(Study.id)):
            series = s.scalars(select(Series).where(Series.study_pk == study.id)
                               .order_by(Series.id)).first()
            # The decision about the study's images (later changes may only add AI results).
            decision = s.scalars(select(RoutingDecision).where(
                RoutingDecision.study_pk == study.id, RoutingDecision.outcome != "no_new_input")
                .order_by(RoutingDecision.id.desc())).first()
            # Clinical tasks only: the validation run reads the dataset's studies again.
            tasks = list(s.scalars(select(InferenceTask).where(
                InferenceTask.study_pk == study.id, InferenceTask.purpose == TaskPurpose.CLINICAL.value)
                .order_by(InferenceTask.id)))
            base = [study.modalities_in_study, series.body_part_examined if series else "",
                    study.study_description[:28], decision.outcome if decision else "-"]
            if not tasks:
                table.add_row(*base, "-", "not routed" if decision else "")
                continue
            for task in tasks:
                findings = list(s.scalars(select(Finding).where(Finding.task_pk == task.id)))
                if task.state == "defect":
                    outcome = f"defect ({task.defect_category}): {task.reason[:60]}"
                elif findings:
                    outcome = ", ".join(f"{f.label} {f.probability:.2f}{' +' if f.positive else ''}"
                                        for f in findings)
                else:
                    outcome = task.state
                table.add_row(*base, task.model_id, outcome)
    console.print(table)


def print_where_to_look(settings: Settings, console: Console) -> None:
    """The addresses a user opens next."""
    base = settings.public_base_url
    console.print()
    console.print("[bold]radai is running[/bold] with embedded defaults (SQLite, files in "
                  f"{settings.data_dir.resolve()})")
    console.print(f"  DICOMweb:      {base}/dicom-web  (e.g. {base}/dicom-web/studies)")
    console.print(f"  DICOM (DIMSE): AE title {settings.ae_title} on port {settings.dicom_port} "
                  f"(try: echoscu -aec {settings.ae_title} 127.0.0.1 {settings.dicom_port})")
    console.print(f"  Health:        {base}/healthz   Metrics: {base}/metrics   API docs: {base}/docs")
    console.print(f"  Pages (sign in first): {base}/worklist  {base}/models  {base}/validations  "
                  f"{base}/monitoring  {base}/audit")


def run_demo(settings: Settings, *, serve: bool) -> int:
    """Start radai, load the demo data, wait for processing, print where to look, serve."""
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console.width = 160
    radai = Radai(settings)
    radai.start()
    try:
        prepare_models(radai, console)
        load_demo_data(radai, console)
        create_demo_dataset(radai, console)
        wait_until_processed(radai, console, timeout=settings.archive.stability_seconds + 900)
        run_demo_validation(radai, console)
        print_processing_summary(radai, console)
        print_where_to_look(settings, console)
        print_demo_users(radai, console)
        if not serve:
            return 0
        from radai.serve import serve_http

        return serve_http(radai)
    finally:
        radai.stop()
