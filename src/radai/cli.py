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


_IMAGE_ATTRIBUTE_OPTIONS = (
    ("--patient-id", "patient_id", "Patient ID (0010,0020)."),
    ("--patient-name", "patient_name", "Patient's Name (0010,0010), e.g. Doe^Jane."),
    ("--patient-sex", "patient_sex", "Patient's Sex (0010,0040): M, F or O."),
    ("--patient-birth-date", "patient_birth_date", "Patient's Birth Date (0010,0030), YYYYMMDD."),
    ("--study-date", "study_date", "Study Date (0008,0020), YYYYMMDD (default today)."),
    ("--study-description", "study_description", "Study Description (0008,1030)."),
    ("--series-description", "series_description", "Series Description (0008,103E)."),
    ("--accession", "accession_number", "Accession Number (0008,0050)."),
    ("--body-part", "body_part", "Body Part Examined (0018,0015), e.g. CHEST."),
    ("--modality", "modality", "Modality (0008,0060) (default OT, or DX with --sop-class dx)."),
    ("--view-position", "view_position", "View Position (0018,5101), e.g. PA."),
    ("--institution", "institution", "Institution Name (0008,0080)."),
    ("--referring-physician", "referring_physician", "Referring Physician's Name (0008,0090)."),
    ("--pixel-spacing", "pixel_spacing", "Imager Pixel Spacing in mm, ROW,COL (DX)."),
    ("--patient-orientation", "patient_orientation", "Patient Orientation, e.g. L,F (DX)."),
)


def image_attribute_options(func: F) -> F:
    """The ``radai import --as-dicom`` options that set DICOM attributes."""
    for flag, name, text in reversed(_IMAGE_ATTRIBUTE_OPTIONS):
        func = click.option(flag, name, default=None, help=text)(func)
    return func


@main.command("import")
@settings_options
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--as-dicom", is_flag=True,
              help="Convert JPEG/PNG images into DICOM (one study per image unless --csv groups them).")
@click.option("--sop-class", type=click.Choice(["sc", "dx"]), default="sc", show_default=True,
              help="With --as-dicom: Secondary Capture or Digital X-Ray (For Presentation).")
@click.option("--csv", "csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --as-dicom: one row per image (file,patient_id,patient_name,sex,birth_date,"
                   "study_date,accession,body_part,view_position,…,study); options give defaults.")
@image_attribute_options
def import_(config_file: Path | None, data_dir: Path | None, paths: tuple[Path, ...], as_dicom: bool,
            sop_class: str, csv_file: Path | None, **attributes: str | None) -> None:
    """Import DICOM files and folders (recursively) into the archive, or images with --as-dicom."""
    given = [flag for flag, name, _ in _IMAGE_ATTRIBUTE_OPTIONS if attributes.get(name) is not None]
    if not as_dicom and (csv_file or given or sop_class != "sc"):
        raise click.UsageError("--csv, --sop-class and attribute options need --as-dicom")
    if not paths and not csv_file:
        raise click.UsageError("give PATHS to import (or --csv with --as-dicom)")
    settings = load(config_file, data_dir=data_dir)
    if as_dicom:
        from radai.archive.convert import run_convert_import

        sys.exit(run_convert_import(settings, list(paths), csv_file=csv_file, sop_class=sop_class,
                                    attributes=attributes))
    from radai.archive.cli import run_import

    sys.exit(run_import(settings, list(paths)))


@main.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="radai.toml to read (default ./radai.toml if present).")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("output", type=click.Path(file_okay=False, path_type=Path))
@click.option("--option", "options", multiple=True, metavar="NAME",
              help="PS3.15 E.3 option, repeatable: retain-longitudinal-modified-dates, "
                   "retain-longitudinal-full-dates, retain-patient-characteristics, retain-device-identity, "
                   "retain-institution-identity, retain-uids, retain-safe-private, clean-descriptors, "
                   "clean-structured-content, clean-graphics.")
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding the pseudonymisation key (default deid.key_file or deid.key).")
@click.option("--clean-pixels", "regions", multiple=True, metavar="X,Y,W,H",
              help="Blank this region in images that carry burned-in text instead of refusing them "
                   "(Clean Pixel Data Option); repeatable.")
@click.option("--mapping", type=click.Path(dir_okay=False, path_type=Path),
              help="Write input path -> output path as CSV here (identifying: keep it apart).")
def deid(config_file: Path | None, source: Path, output: Path, options: tuple[str, ...],
         key_file: Path | None, regions: tuple[str, ...], mapping: Path | None) -> None:
    """De-identify DICOM files and folders (PS3.15 Annex E Basic Profile) into OUTPUT."""
    settings = load(config_file)
    from radai.deid.cli import run_deid

    sys.exit(run_deid(settings, [source], output, options=list(options), key_file=key_file,
                      regions=list(regions), mapping=mapping))


@main.command()
@settings_options
@click.option("--model", "model", required=True, metavar="ID[@VERSION]",
              help="The model version to test (default: its newest registered version).")
@click.option("--dataset", "dataset", required=True, metavar="NAME[@VERSION]",
              help="The frozen dataset version to test on (default: its newest frozen version).")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the stand-alone HTML report here.")
@click.option("--min-auc-lower", type=float, help="Minimum lower confidence bound of each finding's ROC AUC.")
@click.option("--min-sensitivity", type=float, help="Minimum sensitivity at the operating point.")
@click.option("--min-specificity", type=float, help="Minimum specificity at the operating point.")
@click.option("--max-defect-rate", type=float, help="Maximum share of studies that are technical defects.")
@click.option("--promote", is_flag=True, help="Move a draft model to validated when the run passes.")
@click.option("--timeout", type=float, default=3600.0, show_default=True,
              help="Seconds to wait for the model's results; unfinished studies count as technical defects.")
def validate(config_file: Path | None, data_dir: Path | None, model: str, dataset: str, report: Path | None,
             min_auc_lower: float | None, min_sensitivity: float | None, min_specificity: float | None,
             max_defect_rate: float | None, promote: bool, timeout: float) -> None:
    """Calibration test: run a model on every study of a frozen dataset version, gate and report."""
    settings = load(config_file, data_dir=data_dir)
    given = {"min_auc_lower_bound": min_auc_lower, "min_sensitivity": min_sensitivity,
             "min_specificity": min_specificity, "max_defect_rate": max_defect_rate}
    from radai.quality.cli import run_validate

    sys.exit(run_validate(settings, model=model, dataset=dataset, report=report,
                          thresholds={k: v for k, v in given.items() if v is not None}, promote=promote,
                          timeout=timeout))


class LazyGroup(click.Group):
    """A command group whose commands live in a module imported only when the group is used.

    ``import_name`` is ``"package.module:group"``; ``radai --help`` lists the group
    without importing it.
    """

    def __init__(self, name: str, *, import_name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._import_name = import_name

    def _target(self) -> click.Group:
        import importlib

        module, _, attr = self._import_name.partition(":")
        group: click.Group = getattr(importlib.import_module(module), attr)
        return group

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._target().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._target().get_command(ctx, cmd_name)


@main.command()
@settings_options
@click.option("--dry-run", is_flag=True,
              help="Print which models the study would go to and why; change nothing.")
@click.argument("study_uid", metavar="STUDY_INSTANCE_UID")
def route(config_file: Path | None, data_dir: Path | None, dry_run: bool, study_uid: str) -> None:
    """Explain routing of a stored study, rule by rule and attribute by attribute."""
    if not dry_run:
        raise click.UsageError("only --dry-run is available; studies are routed when they become stable")
    settings = load(config_file, data_dir=data_dir)
    from radai.routing.cli import run_dry_run

    sys.exit(run_dry_run(settings, study_uid))


main.add_command(LazyGroup("users", import_name="radai.auth.cli:users",
                           help="Manage users: add, list, set-password, disable, enable."))
main.add_command(LazyGroup("models", import_name="radai.models.cli:models",
                           help="Model packages: list, show, import, enable, disable, set-state, prepare."))
main.add_command(LazyGroup("datasets", import_name="radai.datasets.cli:datasets",
                           help="Reference datasets: create, add, import, label, freeze, draft, list, show, "
                                "export, verify."))
