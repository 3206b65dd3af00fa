"""Demo accounts: one per role, random passwords per data directory, shown once."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from radai.app import Radai
from radai.auth.models import User
from radai.auth.passwords import Passwords
from radai.auth.roles import Role
from radai.auth.service import ensure_demo_users


def test_demo_users_get_random_passwords_once(auth_radai: Radai, client: TestClient) -> None:
    passwords = Passwords(auth_radai.settings.auth)
    first = ensure_demo_users(auth_radai.db, passwords=passwords)
    assert [(u.name, u.role) for u in first] == [(r.value, r) for r in Role]
    secrets = [u.password for u in first]
    assert all(p and len(p) >= 16 for p in secrets) and len(set(secrets)) == len(secrets)
    for user in first:
        r = client.post("/api/v1/auth/token", data={"username": user.name, "password": user.password})
        assert r.status_code == 200
        me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        assert me.json()["roles"] == [user.role.value]
    with auth_radai.db.session() as s:
        hashes = dict(s.execute(select(User.username, User.password_hash)).all())
    assert all(h.startswith("$argon2id$") and h not in secrets for h in hashes.values())
    # Run again (the demo restarted on the same data directory): nothing changes, no password shown.
    again = ensure_demo_users(auth_radai.db, passwords=passwords)
    assert [u.password for u in again] == [None] * len(Role)
    with auth_radai.db.session() as s:
        assert dict(s.execute(select(User.username, User.password_hash)).all()) == hashes
