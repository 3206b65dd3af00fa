"""``radai demo``'s accounts: one demo user per role, and where a radiologist starts."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from radai.app import Radai
from radai.auth.passwords import Passwords
from radai.auth.service import ensure_demo_users


def print_demo_users(radai: Radai, console: Console) -> None:
    """Create the demo users that do not exist yet and print their names, roles and passwords.

    Passwords are new and random for each data directory and shown only when the account
    is created (an existing account keeps its password and is listed without it).
    """
    users = ensure_demo_users(radai.db, passwords=Passwords(radai.settings.auth))
    table = Table(title="Demo users (passwords are shown once)")
    table.add_column("user")
    table.add_column("role")
    table.add_column("password")
    for user in users:
        table.add_row(user.name, user.role.value,
                      user.password or "(exists already; radai users set-password NAME)")
    console.print(table)
    console.print(f"  Worklist:      {radai.settings.public_base_url}/worklist  "
                  "(sign in as radiologist to read and report)")
