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


def wait_until_stable(radai: Radai, console: Console, timeout: float) -> None:
    """Wait until every study has had its stability event (routing hangs on it)."""
    from sqlalchemy import func, select

    from radai.archive.models import Study

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with radai.db.session() as s:
            pending = s.scalar(select(func.count()).select_from(Study)
                               .where(Study.stable_seq < Study.change_seq)) or 0
        if pending == 0:
            return
        time.sleep(0.5)
    console.print("[yellow]some studies are not stable yet; they will be processed while radai serves")


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


def run_demo(settings: Settings, *, serve: bool) -> int:
    """Start radai, load the demo data, wait for processing, print where to look, serve."""
    console = Console(soft_wrap=True)
    radai = Radai(settings)
    radai.start()
    try:
        load_demo_data(radai, console)
        wait_until_stable(radai, console, timeout=settings.archive.stability_seconds + 60)
        print_where_to_look(settings, console)
        if not serve:
            return 0
        from radai.serve import serve_http

        return serve_http(radai)
    finally:
        radai.stop()
