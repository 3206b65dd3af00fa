"""``radai users``: add, list, set-password, disable, enable."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from radai.auth import service
from radai.auth.passwords import Passwords
from radai.auth.roles import Role, parse_role
from radai.cli import load, settings_options
from radai.config import Settings
from radai.db import Database


@contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()


def _read_password(from_stdin: bool, passwords: Passwords) -> str:
    """The new password: one line of stdin, or typed twice at a hidden prompt."""
    password: str
    if from_stdin:
        password = str(sys.stdin.readline()).rstrip("\r\n")
    else:
        password = str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    try:
        passwords.check_policy(password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return password


def _role(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[Role]:
    try:
        return [parse_role(v) for v in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def users() -> None:
    """Manage the users who may sign in to radai."""


@users.command("add")
@settings_options
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, callback=_role,
              help="Role: admin, radiologist, annotator, vendor or auditor (repeat for several).")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
def add(config_file: Path | None, data_dir: Path | None, name: str, roles: list[Role],
        password_stdin: bool) -> None:
    """Create user NAME with one or more roles."""
    settings = load(config_file, data_dir=data_dir)
    passwords = Passwords(settings.auth)
    try:
        service.validate_username(name)
    except service.UserError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    password = _read_password(password_stdin, passwords)
    with _database(settings) as db:
        try:
            with db.transaction() as session:
                service.create_user(session, username=name, password=password, roles=roles,
                                    passwords=passwords)
        except service.UserError as exc:
            raise click.ClickException(f"user {name}: {exc}") from None
    click.echo(f"user {name} added with role(s) {', '.join(sorted(roles))}")


@users.command("list")
@settings_options
def list_(config_file: Path | None, data_dir: Path | None) -> None:
    """List users, their roles and whether they are enabled."""
    settings = load(config_file, data_dir=data_dir)
    with _database(settings) as db, db.session() as session:
        rows = service.list_users(session)
        click.echo(f"{'NAME':<24} {'ROLES':<36} {'STATE':<9} LAST LOGIN")
        for user in rows:
            roles = ",".join(r.role for r in user.roles)
            last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "-"
            click.echo(f"{user.username:<24} {roles:<36} {'disabled' if user.disabled else 'enabled':<9} "
                       f"{last}")


@users.command("set-password")
@settings_options
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
def set_password(config_file: Path | None, data_dir: Path | None, name: str, password_stdin: bool) -> None:
    """Set a new password for NAME (ends the user's sessions and tokens)."""
    settings = load(config_file, data_dir=data_dir)
    passwords = Passwords(settings.auth)
    password = _read_password(password_stdin, passwords)
    with _database(settings) as db:
        try:
            with db.transaction() as session:
                service.set_password(session, username=name, password=password, passwords=passwords)
        except service.UserError as exc:
            raise click.ClickException(f"user {name}: {exc}") from None
    click.echo(f"password of user {name} changed")


def _set_disabled(config_file: Path | None, data_dir: Path | None, name: str, disabled: bool) -> None:
    settings = load(config_file, data_dir=data_dir)
    with _database(settings) as db:
        try:
            with db.transaction() as session:
                service.set_disabled(session, username=name, disabled=disabled)
        except service.UserError as exc:
            raise click.ClickException(f"user {name}: {exc}") from None
    click.echo(f"user {name} {'disabled' if disabled else 'enabled'}")


@users.command("disable")
@settings_options
@click.argument("name")
def disable(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Disable NAME: no more logins, and every session and token ends now."""
    _set_disabled(config_file, data_dir, name, True)


@users.command("enable")
@settings_options
@click.argument("name")
def enable(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Enable NAME again."""
    _set_disabled(config_file, data_dir, name, False)

