"""``radai models``: list, show, import, enable, disable, set-state, prepare."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from radai.cli import load, settings_options
from radai.db import Database
from radai.models.api import ModelDefect
from radai.models.manifest import LifecycleState, ManifestError
from radai.models.registry import ModelNotFound, ModelRecord, ModelRegistry, RegistryError, parse_ref


@contextmanager
def _registry(config_file: Path | None, data_dir: Path | None) -> Iterator[ModelRegistry]:
    settings = load(config_file, data_dir=data_dir)
    db = Database(settings.resolved_database_url)
    try:
        db.migrate()
        registry = ModelRegistry(db=db, settings=settings)
        try:
            registry.sync()
        except ManifestError as exc:
            raise click.ClickException(str(exc)) from None
        yield registry
    finally:
        db.dispose()


def _get(registry: ModelRegistry, ref: str) -> ModelRecord:
    model_id, version = parse_ref(ref)
    try:
        return registry.get(model_id, version)
    except ModelNotFound as exc:
        raise click.ClickException(str(exc)) from None


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@click.group()
def models() -> None:
    """Model packages: list, show, import, enable, disable."""


@models.command("list")
@settings_options
def list_(config_file: Path | None, data_dir: Path | None) -> None:
    """Every registered model version with its vendor, state and licence."""
    with _registry(config_file, data_dir) as registry:
        records = registry.list()
    table = Table(box=None, show_edge=False)
    for column in ("ID", "VERSION", "VENDOR", "STATE", "ORIGIN", "LICENCE"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(r.model_id, r.version, r.manifest.vendor, r.state.value, r.origin, r.manifest.licence)
    Console(width=200).print(table)


@models.command()
@settings_options
@click.argument("ref", metavar="ID[@VERSION]")
def show(config_file: Path | None, data_dir: Path | None, ref: str) -> None:
    """Everything the manifest and the registry know of one model version."""
    with _registry(config_file, data_dir) as registry:
        r = _get(registry, ref)
        history = registry.history(r.model_id, r.version)
    m = r.manifest
    out = Console(width=200, highlight=False)
    lines = [
        f"{m.name} ({r.ref})",
        f"vendor: {m.vendor}",
        f"licence: {m.licence}",
        f"state: {r.state.value}",
        f"origin: {r.origin} ({r.source})",
        f"intended use: {m.intended_use}",
        f"scope: modalities {', '.join(m.scope.modalities)}; body parts "
        f"{', '.join(m.scope.body_parts) or 'any'} (empty: {m.scope.missing_body_part}); views "
        f"{', '.join(m.scope.views) or 'any'}",
        f"input: {m.input.dimensions} {m.input.size[0]}x{m.input.size[1]}x{m.input.channels} "
        f"{m.input.layout}, resize {m.input.resize}, windowing {m.input.windowing}, "
        f"normalisation {m.input.normalisation.kind}, images {m.input.min_images}-{m.input.max_images}",
        f"runtime: {m.runtime.kind} ({m.runtime.file or m.runtime.entry_point or 'built at first use'}), "
        f"device {m.resources.device}, batch {m.resources.max_batch_size}",
        "findings:",
    ]
    lines += [f"  {f.label}: ({f.code.value}, {f.code.scheme}, \"{f.code.meaning}\") column {f.index}, "
              f"threshold {f.threshold}, urgency {f.urgency}" for f in m.outputs.findings]
    claimed = {k: v for k, v in m.claimed_metrics.model_dump().items() if v is not None}
    lines.append("claimed metrics: " + (", ".join(f"{k} {v}" for k, v in claimed.items()) or "none"))
    lines.append("history:")
    lines += [f"  {h.changed_at:%Y-%m-%d %H:%M:%S} {h.from_state or '-'} -> {h.to_state} by {h.actor}: "
              f"{h.reason}" for h in history]
    for line in lines:
        out.print(line, markup=False, soft_wrap=True)


@models.command("import")
@settings_options
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def import_(config_file: Path | None, data_dir: Path | None, path: Path) -> None:
    """Validate the package at PATH and copy it into the data directory (as draft)."""
    with _registry(config_file, data_dir) as registry:
        try:
            r = registry.import_package(path)
        except (ManifestError, RegistryError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"imported {r.ref} ({r.state.value}) into {r.source}")


def _set(config_file: Path | None, data_dir: Path | None, ref: str, state: LifecycleState,
         reason: str, actor: str | None) -> None:
    with _registry(config_file, data_dir) as registry:
        r = _get(registry, ref)
        try:
            r = registry.set_state(r.model_id, r.version, state, reason=reason, actor=actor or _actor())
        except RegistryError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"{r.ref} is {r.state.value}")


_reason = click.option("--reason", default=None, help="Why (recorded in the model's history).")
_actor_option = click.option("--actor", default=None, help="Who (default cli:<user>).")


@models.command()
@settings_options
@click.argument("ref", metavar="ID[@VERSION]")
@_reason
@_actor_option
def enable(config_file: Path | None, data_dir: Path | None, ref: str, reason: str | None,
           actor: str | None) -> None:
    """Make a version live (from approved or suspended): studies are routed to it."""
    _set(config_file, data_dir, ref, LifecycleState.LIVE, reason or "enabled", actor)


@models.command()
@settings_options
@click.argument("ref", metavar="ID[@VERSION]")
@_reason
@_actor_option
def disable(config_file: Path | None, data_dir: Path | None, ref: str, reason: str | None,
            actor: str | None) -> None:
    """Suspend a live version: no new studies go to it."""
    _set(config_file, data_dir, ref, LifecycleState.SUSPENDED, reason or "disabled", actor)


@models.command("set-state")
@settings_options
@click.argument("ref", metavar="ID[@VERSION]")
@click.argument("state", type=click.Choice([s.value for s in LifecycleState]))
@click.option("--reason", required=True, help="Why (recorded in the model's history).")
@_actor_option
def set_state(config_file: Path | None, data_dir: Path | None, ref: str, state: str, reason: str,
              actor: str | None) -> None:
    """Move a version to another lifecycle state (draft → validated → approved → live …)."""
    _set(config_file, data_dir, ref, LifecycleState(state), reason, actor)


@models.command()
@settings_options
@click.argument("refs", nargs=-1, metavar="[ID[@VERSION]]...")
def prepare(config_file: Path | None, data_dir: Path | None, refs: tuple[str, ...]) -> None:
    """Load models once so that files built at first use (ONNX exports) are cached.

    Without arguments, every live model.
    """
    failed = 0
    with _registry(config_file, data_dir) as registry:
        records = [_get(registry, ref) for ref in refs] if refs else registry.live()
        for r in records:
            try:
                registry.load(r.model_id, r.version)
            except ModelDefect as exc:
                failed += 1
                click.echo(f"{r.ref}: {exc.reason}", err=True)
            else:
                click.echo(f"{r.ref}: ready")
    sys.exit(1 if failed else 0)
