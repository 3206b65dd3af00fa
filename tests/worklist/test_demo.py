"""``radai demo`` creates one user per role and prints the credentials once."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from rich.console import Console

from radai.app import Radai
from radai.worklist.demo import print_demo_users
from tests.auth.conftest import token_for


def test_demo_users_are_printed_once_and_can_sign_in(auth_radai: Radai, client: TestClient) -> None:
    console = Console(record=True, width=200)
    print_demo_users(auth_radai, console)
    text = console.export_text()
    rows = dict(re.findall(r"│ (\w+)\s+│ \w+\s+│ (\S+)\s+│", text))
    assert set(rows) == {"admin", "radiologist", "annotator", "vendor", "auditor"}
    assert "/worklist" in text
    token = token_for(client, "radiologist", rows["radiologist"])
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["roles"] == ["radiologist"]

    again = Console(record=True, width=200)
    print_demo_users(auth_radai, again)
    second = again.export_text()
    assert rows["radiologist"] not in second
    assert second.count("exists already") == 5
