"""``radai users``: add (stdin or prompt), list, set-password, disable, enable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient

from radai.app import Radai, build_web_app
from radai.cli import main
from radai.config import load_settings

FAST = ["RADAI_AUTH__ARGON2_TIME_COST=1", "RADAI_AUTH__ARGON2_MEMORY_KIB=1024",
        "RADAI_AUTH__ARGON2_PARALLELISM=1"]


def _env() -> dict[str, str]:
    return dict(item.split("=", 1) for item in FAST)


def _can_log_in(data_dir: Path, name: str, password: str) -> int:
    radai = Radai(load_settings(data_dir=data_dir))
    radai.prepare()
    try:
        with TestClient(build_web_app(radai)) as c:
            return c.post("/api/v1/auth/token", data={"username": name, "password": password}).status_code
    finally:
        radai.stop()


def test_users_add_with_password_stdin_as_a_real_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADAI_")} | _env()
    proc = subprocess.run([sys.executable, "-m", "radai", "users", "add", "alice", "--role", "radiologist",
                           "--role", "annotator", "--password-stdin", "--data-dir", str(data)],
                          input="s3cret pass phrase\n", capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "user alice added with role(s) annotator, radiologist" in proc.stdout
    assert "s3cret" not in proc.stdout + proc.stderr
    assert _can_log_in(data, "alice", "s3cret pass phrase") == 200
    assert _can_log_in(data, "alice", "s3cret pass phrase ") == 400


def test_users_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    runner = CliRunner()
    env = _env()
    r = runner.invoke(main, ["users", "add", "bob", "--role", "admin", "--data-dir", data],
                      input="first password\nfirst password\n", env=env)
    assert r.exit_code == 0, r.output
    assert "first password" not in r.output
    r = runner.invoke(main, ["users", "add", "bob", "--role", "admin", "--password-stdin",
                             "--data-dir", data], input="another password\n", env=env)
    assert r.exit_code == 1 and "exists already" in r.output
    r = runner.invoke(main, ["users", "add", "carol", "--role", "superuser", "--password-stdin",
                             "--data-dir", data], input="whatever pass\n", env=env)
    assert r.exit_code == 2 and "valid roles are admin, radiologist, annotator, vendor, auditor" in r.output
    r = runner.invoke(main, ["users", "add", "carol", "--role", "auditor", "--password-stdin",
                             "--data-dir", data], input="short\n", env=env)
    assert r.exit_code == 1 and "at least 8 characters" in r.output
    r = runner.invoke(main, ["users", "add", "bad name", "--role", "auditor", "--password-stdin",
                             "--data-dir", data], input="long enough pass\n", env=env)
    assert r.exit_code == 2 and "user name must be" in r.output
    r = runner.invoke(main, ["users", "add", "dave", "--role", "auditor", "--data-dir", data],
                      input="one password\nanother one\none password\none password\n", env=env)
    assert r.exit_code == 0 and "do not match" in r.output.lower()
    r = runner.invoke(main, ["users", "list", "--data-dir", data], env=env)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()  # the table; log lines go to stderr
    assert lines[0].split() == ["NAME", "ROLES", "STATE", "LAST", "LOGIN"]
    assert lines[1].split()[:3] == ["bob", "admin", "enabled"]
    assert lines[2].split()[:3] == ["dave", "auditor", "enabled"]
    assert _can_log_in(tmp_path / "data", "bob", "first password") == 200
    r = runner.invoke(main, ["users", "set-password", "bob", "--password-stdin", "--data-dir", data],
                      input="second password\n", env=env)
    assert r.exit_code == 0, r.output
    assert _can_log_in(tmp_path / "data", "bob", "first password") == 400
    assert _can_log_in(tmp_path / "data", "bob", "second password") == 200
    r = runner.invoke(main, ["users", "disable", "bob", "--data-dir", data], env=env)
    assert r.exit_code == 0
    assert "disabled" in runner.invoke(main, ["users", "list", "--data-dir", data], env=env).output
    assert _can_log_in(tmp_path / "data", "bob", "second password") == 400
    r = runner.invoke(main, ["users", "enable", "bob", "--data-dir", data], env=env)
    assert r.exit_code == 0
    assert _can_log_in(tmp_path / "data", "bob", "second password") == 200
    r = runner.invoke(main, ["users", "disable", "nobody", "--data-dir", data], env=env)
    assert r.exit_code == 1 and "no such user" in r.output
