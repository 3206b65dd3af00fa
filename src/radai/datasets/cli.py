"""``radai datasets``: create, add, import, label, freeze, draft, list, show, export, verify.

Commands work on the data directory directly (like ``radai import``), in the process
that runs them. Changes are recorded, and exports audited, under the actor
``cli:<OS user>``: the command line has no radai login, and whoever can run it can read
the database, so the operating-system account is who acted.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from radai.app import Radai
from radai.archive.query import Match
from radai.cli import image_attribute_options, load, settings_options
from radai.datasets.card import TEXT_FIELDS, card_markdown
from radai.datasets.manifest import load_manifest
from radai.datasets.models import DatasetVersion, LabelValue
from radai.datasets.service import (
    DatasetError,
    DatasetNotFound,
    add_studies,
    code_for,
    content_problem,
    create_dataset,
    draft_of,
    find_studies,
    freeze,
    get_dataset,
    get_version,
    list_datasets,
    parse_ref,
    read_uid_file,
    remove_studies,
    set_card,
    set_label,
    start_draft,
    study_count,
    study_pks_for_uids,
)


def cli_actor() -> str:
    """``cli:<OS user>``: who acts when a command is run (see the module docstring)."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"


@contextmanager
def _radai(config_file: Path | None, data_dir: Path | None) -> Iterator[Radai]:
    radai = Radai(load(config_file, data_dir=data_dir))
    radai.prepare()
    try:
        yield radai
    except (DatasetError, DatasetNotFound) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None
    finally:
        radai.stop()


def _ref(ref: str) -> tuple[str, int | None]:
    try:
        return parse_ref(ref)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None


def _out() -> Console:
    return Console(width=200, highlight=False, soft_wrap=True)


def _say(text: str) -> None:
    _out().print(text, markup=False)


_CARD_OPTIONS = (
    ("--purpose", "purpose", "What the dataset is for (dataset card)."),
    ("--source", "source", "Where the studies come from (dataset card)."),
    ("--inclusion-criteria", "inclusion_criteria", "Which studies were taken or left out (dataset card)."),
    ("--label-method", "label_method", "How the labels were established (dataset card)."),
    ("--label-verification", "label_verification", "How the labels were checked (dataset card)."),
)


def _card_options(func: Any) -> Any:
    for flag, name, text in reversed(_CARD_OPTIONS):
        func = click.option(flag, name, default=None, help=text)(func)
    return click.option("--description", default=None, help="One line about the dataset.")(func)


@click.group()
def datasets() -> None:
    """Versioned reference datasets: create, add, import, label, freeze, draft, export."""


@datasets.command()
@settings_options
@click.argument("name")
@_card_options
def create(config_file: Path | None, data_dir: Path | None, name: str, description: str | None,
           **card: str | None) -> None:
    """Create dataset NAME with an empty draft version 1."""
    with _radai(config_file, data_dir) as radai, radai.db.transaction() as s:
        version = create_dataset(s, name=name, actor=cli_actor(), description=description or "",
                                 card={k: v for k, v in card.items() if v is not None})
        number = version.number
    _say(f"created {name} (version {number}, draft)")


@datasets.command()
@settings_options
@click.argument("ref", metavar="NAME[@VERSION]")
@_card_options
def card(config_file: Path | None, data_dir: Path | None, ref: str, description: str | None,
         **text: str | None) -> None:
    """Set the text of a draft's dataset card (purpose, source, criteria, label method…)."""
    name, number = _ref(ref)
    with _radai(config_file, data_dir) as radai, radai.db.transaction() as s:
        version = draft_of(s, name=name, number=number)
        set_card(s, version=version, description=description, **text)
        number = version.number
    _say(f"updated the card of {name}@{number}")


def _matches(query: tuple[str, ...]) -> list[Match]:
    out = []
    for q in query:
        keyword, sep, value = q.partition("=")
        if not sep or not keyword.strip():
            raise click.UsageError("--query takes KEYWORD=VALUE, e.g. --query Modality=CR")
        out.append(Match(keyword.strip(), value.strip()))
    return out


@datasets.command()
@settings_options
@click.argument("ref", metavar="NAME[@VERSION]")
@click.argument("study_uids", nargs=-1)
@click.option("--query", "query", multiple=True, metavar="KEYWORD=VALUE",
              help="Add the studies matching every key (QIDO-RS matching: wildcards *, ?, date ranges "
                   "a-b), e.g. --query Modality=CR --query BodyPartExamined=CHEST.")
@click.option("--uids", "uid_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file with one Study Instance UID per line.")
def add(config_file: Path | None, data_dir: Path | None, ref: str, study_uids: tuple[str, ...],
        query: tuple[str, ...], uid_file: Path | None) -> None:
    """Add archived studies to a draft: by query, by a UID list file, or by UIDs given."""
    if sum(bool(x) for x in (query, uid_file, study_uids)) != 1:
        raise click.UsageError("give exactly one of --query, --uids or STUDY_UIDS")
    name, number = _ref(ref)
    with _radai(config_file, data_dir) as radai, radai.db.transaction() as s:
        version = draft_of(s, name=name, number=number)
        if query:
            pks = find_studies(s, matches=_matches(query))
        else:
            pks = study_pks_for_uids(s, read_uid_file(uid_file) if uid_file else list(study_uids))
        added = add_studies(s, version=version, study_pks=pks)
        number, total = version.number, study_count(s, version_pk=version.id)
    span = f" ({added.keys[0]}–{added.keys[-1]})" if added.keys else ""
    _say(f"{name}@{number}: {len(added.keys)} added{span}, {added.already} already in it, {total} studies")


@datasets.command("import")
@settings_options
@click.argument("ref", metavar="NAME[@VERSION]")
@click.argument("csv_file", metavar="LABELS_CSV",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--label-method", "method", default="", help="Method of labels whose row has none.")
@click.option("--labelled-by", "established_by", default="",
              help="Who established labels whose row names no one.")
@click.option("--sop-class", type=click.Choice(["sc", "dx"]), default="sc", show_default=True,
              help="JPEG/PNG images become Secondary Capture or Digital X-Ray (For Presentation).")
@image_attribute_options
def import_(config_file: Path | None, data_dir: Path | None, ref: str, csv_file: Path, method: str,
            established_by: str, sop_class: str, **attributes: str | None) -> None:
    """Import the files a labels CSV lists (DICOM, or JPEG/PNG converted) with their labels."""
    from radai.archive.convert import ConversionError, attributes_from_options
    from radai.datasets.importing import import_labelled, read_import_csv

    name, number = _ref(ref)
    if number is not None:
        raise click.UsageError("import adds to the dataset's draft: give NAME without @VERSION")
    try:
        defaults = attributes_from_options(**attributes)
    except ConversionError as exc:
        raise click.ClickException(str(exc)) from None
    with _radai(config_file, data_dir) as radai:
        items = read_import_csv(csv_file)
        result = import_labelled(db=radai.db, archive=radai.archive, name=name, items=items,
                                 defaults=defaults, sop_class="dx" if sop_class == "dx" else "sc",
                                 method=method, established_by=established_by, actor=cli_actor())
    assert result.added is not None
    _say(f"stored: {result.stored}  duplicates: {result.duplicates}  "
         f"studies added: {len(result.added.keys)}  already in the dataset: {result.added.already}  "
         f"labels: {result.labels}")


@datasets.command()
@settings_options
@click.argument("ref", metavar="NAME[@VERSION]")
@click.argument("study", required=False, metavar="[STUDY]")
@click.option("--code", help="The finding, SCHEME:VALUE (e.g. SCT:233604007).")
@click.option("--meaning", help="Its Code Meaning (needed the first time a code is used).")
@click.option("--value", type=click.Choice([v.value for v in LabelValue]), help="The label.")
@click.option("--method", default="", help="How the label was established (e.g. radiologist consensus).")
@click.option("--by", "established_by", default="", help="Who established it (a reader, a panel).")
@click.option("--csv", "csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labels from a CSV: study (key or UID), code, meaning, label, method, established_by.")
def label(config_file: Path | None, data_dir: Path | None, ref: str, study: str | None, code: str | None,
          meaning: str | None, value: str | None, method: str, established_by: str,
          csv_file: Path | None) -> None:
    """Label one finding of a STUDY (dataset key, e.g. S0001, or Study Instance UID), or many (--csv)."""
    from radai.datasets.importing import read_label_csv

    name, number = _ref(ref)
    if csv_file is None and not (study and code and value):
        raise click.UsageError("give STUDY --code SCHEME:VALUE --value present|absent|uncertain, "
                               "or --csv FILE")
    if csv_file is not None and (study or code or value):
        raise click.UsageError("--csv cannot be combined with STUDY, --code or --value")
    with _radai(config_file, data_dir) as radai, radai.db.transaction() as s:
        version = draft_of(s, name=name, number=number)
        if csv_file is not None:
            rows = read_label_csv(csv_file)
            for r in rows:
                try:
                    code_ref = code_for(s, version=version, code=r.row.code, meaning=r.row.meaning or None)
                    set_label(s, version=version, study=r.study, code=code_ref,
                              value=r.row.label, method=r.row.method or method,
                              established_by=r.row.established_by or established_by, actor=cli_actor())
                except DatasetError as exc:
                    raise DatasetError(f"{csv_file}: line {r.row.line}: {exc}") from None
            count = len(rows)
        else:
            assert study and code and value
            code_ref = code_for(s, version=version, code=code, meaning=meaning)
            set_label(s, version=version, study=study, code=code_ref, value=value, method=method,
                      established_by=established_by, actor=cli_actor())
            count = 1
        number = version.number
    _say(f"{name}@{number}: {count} label(s) recorded")


@datasets.command()
@settings_options
@click.argument("ref", metavar="NAME[@VERSION]")
@click.argument("studies", nargs=-1, required=True)
def remove(config_file: Path | None, data_dir: Path | None, ref: str, studies: tuple[str, ...]) -> None:
    """Take STUDIES (keys or Study Instance UIDs) and their labels out of a draft."""
    name, number = _ref(ref)
    with _radai(config_file, data_dir) as radai, radai.db.transaction() as s:
        version = draft_of(s, name=name, number=number)
        removed = remove_studies(s, version=version, studies=list(studies))
        number = version.number
    _say(f"{name}@{number}: {removed} removed")


@datasets.command("freeze")
@settings_options
@click.argument("ref", metavar="NAME[@VERSION]")
def freeze_(config_file: Path | None, data_dir: Path | None, ref: str) -> None:
    """Freeze a draft: write its manifest (instance SHA-256, labels, card); it can no longer change."""
    name, number = _ref(ref)
    with _radai(config_file, data_dir) as radai, radai.db.transaction() as s:
        version = freeze(s, version=draft_of(s, name=name, number=number), storage=radai.storage,
                         actor=cli_actor())
        number, sha = version.number, version.manifest_sha256
    _say(f"{name}@{number} is frozen; manifest SHA-256 {sha}")


@datasets.command()
@settings_options
@click.argument("name")
def draft(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Start the next version of NAME as a draft copy of its newest (frozen) version."""
    with _radai(config_file, data_dir) as radai, radai.db.transaction() as s:
        version = start_draft(s, name=name, actor=cli_actor())
        number, count = version.number, study_count(s, version_pk=version.id)
    _say(f"{name}@{number} is a draft with {count} studies copied from version {number - 1}")


@datasets.command("list")
@settings_options
def list_(config_file: Path | None, data_dir: Path | None) -> None:
    """Every dataset with its versions."""
    table = Table(box=None, show_edge=False)
    for column in ("NAME", "VERSION", "STATE", "STUDIES", "FROZEN", "MANIFEST SHA-256", "DESCRIPTION"):
        table.add_column(column, overflow="fold")
    with _radai(config_file, data_dir) as radai, radai.db.session() as s:
        for dataset in list_datasets(s):
            for v in dataset.versions:
                table.add_row(dataset.name, str(v.number), v.state, str(study_count(s, version_pk=v.id)),
                              f"{v.frozen_at:%Y-%m-%d %H:%M}" if v.frozen_at else "",
                              (v.manifest_sha256 or "")[:16], dataset.description)
    _out().print(table)


@datasets.command()
@settings_options
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--manifest", "as_manifest", is_flag=True, help="Print the manifest JSON (frozen versions).")
def show(config_file: Path | None, data_dir: Path | None, ref: str, as_manifest: bool) -> None:
    """A version's state, counts and dataset card (the newest version without @VERSION)."""
    name, number = _ref(ref)
    with _radai(config_file, data_dir) as radai, radai.db.session() as s:
        get_dataset(s, name=name)
        version = get_version(s, name=name, number=number)
        if as_manifest:
            click.echo(json.dumps(load_manifest(version), indent=2, ensure_ascii=False))
            return
        lines = _describe(version, study_count(s, version_pk=version.id))
    for line in lines:
        _say(line)


def _describe(version: DatasetVersion, count: int) -> list[str]:
    lines = [f"{version.dataset.name}@{version.number}: {version.state}, {count} studies"]
    if version.frozen:
        lines.append(f"frozen {version.frozen_at:%Y-%m-%d %H:%M:%S} UTC by {version.frozen_by}; "
                     f"manifest SHA-256 {version.manifest_sha256}")
        lines += ["", card_markdown(load_manifest(version)["card"])]
    else:
        lines += [f"{field.replace('_', ' ')}: {getattr(version, field) or '(not stated)'}"
                  for field in TEXT_FIELDS]
    return lines


@datasets.command()
@settings_options
@click.argument("ref", metavar="NAME[@VERSION]")
def verify(config_file: Path | None, data_dir: Path | None, ref: str) -> None:
    """Check that the archive still holds exactly the files of a frozen version (SHA-256 of each)."""
    name, number = _ref(ref)
    problems = []
    with _radai(config_file, data_dir) as radai, radai.db.session() as s:
        version = get_version(s, name=name, number=number)
        manifest = load_manifest(version) if version.frozen else None
        if manifest is None:
            raise click.ClickException(f"{name}@{version.number} is a draft; "
                                       "only frozen versions have a manifest")
        for study in manifest["studies"]:
            problem = content_problem(s, storage=radai.storage, study=study)
            if problem:
                problems.append(f"{study['key']}: {problem}")
    for p in problems:
        _say(p)
    total = len(manifest["studies"])
    _say(f"{name}@{manifest['version']}: {total - len(problems)} of {total} studies as frozen")
    sys.exit(1 if problems else 0)


@datasets.command()
@settings_options
@click.argument("ref", metavar="NAME[@VERSION]")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--identified", is_flag=True,
              help="Export the stored files as they are, with patient identity (not de-identified).")
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Pseudonymisation key (default deid.key_file or deid.key).")
@click.option("--option", "options", multiple=True, metavar="NAME",
              help="PS3.15 E.3 option instead of datasets.export_options (repeatable; see radai deid).")
def export(config_file: Path | None, data_dir: Path | None, ref: str, out_dir: Path, identified: bool,
           key_file: Path | None, options: tuple[str, ...]) -> None:
    """Export a frozen version into DIR: DICOM, labels CSV, card and manifest (de-identified by default)."""
    from radai.datasets.export import export_version
    from radai.deid.cli import load_key
    from radai.deid.engine import Profile

    if identified and (key_file or options):
        raise click.UsageError("--key-file and --option apply to de-identified exports only")
    name, number = _ref(ref)
    settings = load(config_file, data_dir=data_dir)
    key = profile = None
    if not identified:
        try:
            key = load_key(settings, key_file)
            profile = Profile.from_names(list(options) or settings.datasets.export_options)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        used = key_file or settings.deid.key_file
        if used is not None and used.resolve().is_relative_to(out_dir.resolve()):
            raise click.ClickException("the key file must not be inside the export folder")
    with _radai(config_file, data_dir) as radai:
        result = export_version(db=radai.db, storage=radai.storage, name=name, number=number, out_dir=out_dir,
                                actor=cli_actor(), client="cli", identified=identified, key=key,
                                profile=profile)
    kind = "identified" if result.identified else "de-identified"
    _say(f"exported {result.dataset}@{result.version} ({kind}): {result.studies} studies, "
         f"{result.files} files into {result.out_dir}")
