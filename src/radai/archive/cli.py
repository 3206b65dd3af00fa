"""Command-line front ends of the archive."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from radai.app import Radai
from radai.archive.importer import ImportSummary, import_paths
from radai.archive.service import iter_files
from radai.config import Settings


def run_import(settings: Settings, paths: list[Path]) -> int:
    """Import with a progress bar and print the summary; exit status 1 if any file was refused."""
    console = Console(stderr=True)
    radai = Radai(settings)
    radai.prepare()
    try:
        total = sum(1 for _ in iter_files(paths))
        with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            task = progress.add_task("import", total=total)
            summary = import_paths(radai.archive, paths,
                                   on_file=lambda _p: progress.advance(task))
    finally:
        radai.stop()
    print_summary(summary, Console())
    return 1 if summary.rejected else 0


def print_summary(summary: ImportSummary, console: Console) -> None:
    """Stored, duplicates and refused files with their reasons."""
    console.print(f"stored: {summary.stored}  duplicates: {summary.duplicates}  "
                  f"rejected: {len(summary.rejected)}  studies: {len(summary.studies)}")
    for path, reason in summary.rejected:
        console.print(f"  rejected {path}: {reason}", highlight=False, markup=False,
                      soft_wrap=True)
