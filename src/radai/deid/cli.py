"""``radai deid IN… OUT``: de-identify files and folders (PS3.15 Annex E)."""

from __future__ import annotations

from pathlib import Path

import click

from radai.config import Settings
from radai.deid.engine import Profile
from radai.deid.files import deidentify_tree
from radai.deid.pixels import Region
from radai.deid.pseudonym import PseudonymKey


def load_key(settings: Settings, key_file: Path | None) -> PseudonymKey:
    """The key from ``--key-file``, else the configured ``deid.key_file`` or ``deid.key``."""
    path = key_file or settings.deid.key_file
    if path is not None:
        return PseudonymKey.from_file(path)
    if settings.deid.key is not None:
        return PseudonymKey(settings.deid.key.get_secret_value().encode())
    raise ValueError(
        "no de-identification key: give --key-file, or set deid.key_file or deid.key "
        "(RADAI_DEID__KEY_FILE / RADAI_DEID__KEY)"
    )


def run_deid(
    settings: Settings,
    inputs: list[Path],
    out_dir: Path,
    *,
    options: list[str],
    key_file: Path | None,
    regions: list[str],
    mapping: Path | None,
) -> int:
    """Run the command; returns the exit status."""
    try:
        key = load_key(settings, key_file)
        profile = Profile.from_names(options or settings.deid.options, [Region.parse(r) for r in regions])
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    out = out_dir.resolve()
    used_key = key_file or settings.deid.key_file
    if used_key is not None and used_key.resolve().is_relative_to(out):
        raise click.ClickException("the key file must not be inside the output folder")
    if mapping is not None and mapping.resolve().is_relative_to(out):
        raise click.ClickException(
            "the mapping file identifies patients' files; write it outside the output folder"
        )
    if any(out == p.resolve() for p in inputs):
        raise click.ClickException("the output folder must differ from the input")
    report = deidentify_tree(inputs, out_dir, profile=profile, key=key, mapping_file=mapping)
    for path, reason in report.refused:
        click.echo(f"refused {path}: {reason}", err=True)
    for path, reason in report.failed:
        click.echo(f"failed {path}: {reason}", err=True)
    click.echo(
        f"{len(report.written)} de-identified, {len(report.refused)} refused, "
        f"{len(report.failed)} failed, {len(report.not_dicom)} not DICOM, "
        f"{len(report.duplicates)} duplicate instances"
    )
    if report.failed or not (report.written or report.refused):
        return 1
    return 0
