"""The ``radai`` command."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from radai.config import ConfigError, Settings, load_settings
from radai.logs import setup_logging

F = TypeVar("F", bound=Callable[..., Any])


def settings_options(func: F) -> F:
    """The options every command that opens the data directory takes."""
    func = click.option("--config", "config_file", type=click.Path(path_type=Path),
                        help="radai.toml to read (default ./radai.toml if present).")(func)
    func = click.option("--data-dir", type=click.Path(path_type=Path),
                        help="Data directory (default ./radai-data; RADAI_DATA_DIR).")(func)
    return func


def load(config_file: Path | None, **overrides: Any) -> Settings:
    """Load settings or exit with the message naming the invalid setting."""
    try:
        settings = load_settings(config_file, **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging(settings.log_level)
    return settings


@click.group()
@click.version_option(package_name="radai")
def main() -> None:
    """radai: DICOM archive, AI routing and inference, results, worklist and quality."""


@main.command()
@settings_options
@click.option("--host", help="HTTP address to bind (default 127.0.0.1).")
@click.option("--http-port", type=int, help="HTTP port (default 8000).")
@click.option("--dicom-port", type=int, help="DICOM port (default 11112).")
@click.option("--ae-title", help="DICOM AE title (default RADAI).")
def serve(config_file: Path | None, data_dir: Path | None, host: str | None,
          http_port: int | None, dicom_port: int | None, ae_title: str | None) -> None:
    """Run radai: DIMSE, DICOMweb, API, UI and workers in one process."""
    settings = load(config_file, data_dir=data_dir, host=host, http_port=http_port,
                    dicom_port=dicom_port, ae_title=ae_title)
    from radai.serve import run

    sys.exit(run(settings))


@main.command()
@settings_options
@click.option("--no-serve", is_flag=True, help="Load and process the demo data, then exit.")
def demo(config_file: Path | None, data_dir: Path | None, no_serve: bool) -> None:
    """Load the demo data (real images from installed packages), process it, then serve."""
    settings = load(config_file, data_dir=data_dir)
    from radai.demo import run_demo

    sys.exit(run_demo(settings, serve=not no_serve))


@main.command("import")
@settings_options
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def import_(config_file: Path | None, data_dir: Path | None, paths: tuple[Path, ...]) -> None:
    """Import DICOM files and folders (recursively) into the archive."""
    settings = load(config_file, data_dir=data_dir)
    from radai.archive.cli import run_import

    sys.exit(run_import(settings, list(paths)))
