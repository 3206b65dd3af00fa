"""The radiologist workspace in a real browser: ``radai serve`` with real studies, Debian's Chromium.

One server per module (:func:`workspace`) holds:

- five of the chest radiographs of pneumonia-model-package, imported with
  ``radai import --as-dicom`` as CR chest PA studies and read by the real
  ``pneumonia-peds`` model (Keras Xception exported to ONNX; the export is cached in
  the session's ``models_cache``, or in ``TEST_MODELS_CACHE`` across runs): two that it
  calls pneumonia, three that it does not — one of them an earlier study of a patient
  with a positive one (a prior);
- a CT slice of pydicom-data, which no routing rule sends to a model (not routed);
- one user per role, created with ``radai users add``.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright (its own browser
downloads are never used); a missing Chromium fails the tests.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from radai.auth.roles import Role
from tests.auth.conftest import FAST_ARGON2
from tests.fixtures.data import pneumonia_images_dir, pydicom_data
from tests.fixtures.peers import RadaiServer, radai_command, start_radai, stop_process, write_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PASSWORD = "correct horse battery"
#: The browser's window: wide enough for the study page's two columns.
VIEWPORT: ViewportSize = {"width": 1440, "height": 1000}

#: Images of pneumonia-model-package and what the real model says about them (see
#: tests/models/test_pneumonia_keras_equality.py): positive at its operating point or not.
#: The first two belong to one patient: an earlier normal study and today's pneumonia.
RADIOGRAPHS: tuple[tuple[str, str, str, str, bool], ...] = (
    # file, patient ID, patient name, study date, expected positive
    ("NORMAL2-IM-1427-0001.jpeg", "E2E-P1", "Ilves^Aino", "20240110", False),
    ("person1946_bacteria_4874.jpeg", "E2E-P1", "Ilves^Aino", "20250301", True),
    ("person1947_bacteria_4876.jpeg", "E2E-P2", "Berg^Oskar", "20250301", True),
    ("NORMAL2-IM-1430-0001.jpeg", "E2E-P3", "Lind^Maja", "20250301", False),
    ("NORMAL2-IM-1431-0001.jpeg", "E2E-P4", "Nieminen^Eero", "20250302", False),
)
#: pydicom-data's CT slice: no routing rule matches a CT, so no model reads it.
CT_FILE = "693_UNCI.dcm"
USERS = {role.value: role for role in Role}
#: A folder named by this variable receives the screenshots (docs/screenshots/ is made so).
SCREENSHOTS_ENV = "TEST_SCREENSHOTS_DIR"


@dataclass
class Workspace:
    """The serving radai and what it holds."""

    server: RadaiServer
    #: Accession number → (patient ID, expected positive) of each converted radiograph.
    radiographs: dict[str, tuple[str, bool]]
    #: Study Instance UID → worklist item (JSON) once every model has run.
    items: dict[str, dict[str, Any]]

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def token(self, user: str) -> str:
        r = httpx.post(f"{self.base_url}/api/v1/auth/token",
                       data={"username": user, "password": PASSWORD}, timeout=30)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def api(self, user: str) -> httpx.Client:
        """A client of the JSON API signed in as ``user`` (bearer token)."""
        return httpx.Client(base_url=self.base_url, timeout=60,
                            headers={"Authorization": f"Bearer {self.token(user)}"})

    def uids(self, *, positive: bool) -> list[str]:
        """Study UIDs of the converted radiographs the model found positive (or negative)."""
        return [uid for uid, item in self.items.items()
                if item["modalities"] == ["CR"] and (item["ai_result"] == "positive") == positive]


def _run(args: list[str], *, stdin: str | None = None, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADAI_")}
    proc = subprocess.run([*radai_command(), *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _load(data_dir: Path, config: Path, folder: Path) -> None:
    """Import the studies and create the users with radai's own commands."""
    rows = folder / "radiographs.csv"
    with rows.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "patient_id", "patient_name", "sex", "birth_date", "study_date", "accession",
                    "study_description"])
        for i, (name, patient, person, date, _positive) in enumerate(RADIOGRAPHS):
            w.writerow([str(pneumonia_images_dir() / name), patient, person, "MF"[i % 2], "20190415",
                        date, f"E2E{i:03d}", "Chest PA"])
    out = _run(["import", "--config", str(config), "--as-dicom", "--csv", str(rows), "--modality", "CR",
                "--body-part", "CHEST", "--view-position", "PA", "--institution", "Children's Hospital"])
    assert f"stored: {len(RADIOGRAPHS)}" in out, out
    out = _run(["import", "--config", str(config), str(pydicom_data(CT_FILE))])
    assert "stored: 1" in out, out
    for user, role in USERS.items():
        _run(["users", "add", user, "--config", str(config), "--role", role.value, "--password-stdin"],
             stdin=PASSWORD + "\n")


def _wait_until_read(workspace: Workspace, expected: int, timeout: float) -> None:
    """Wait until routing, every model and the result objects are done for every study."""
    deadline = time.monotonic() + timeout
    with workspace.api(Role.RADIOLOGIST.value) as api:
        while True:
            r = api.get("/api/v1/worklist")
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            done = len(items) == expected and all(i["ai_result"] != "pending" for i in items)
            if done:
                states = {r["state"] for i in items if i["ai_result"] in ("positive", "negative")
                          for r in api.get(f"/api/v1/studies/{i['study_instance_uid']}/results")
                          .json()["results"]}
                if states == {"ready"}:
                    workspace.items = {i["study_instance_uid"]: i for i in items}
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"the studies were not read within {timeout} s:\n"
                                     + workspace.server.log_text()[-3000:])
            time.sleep(1.0)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, models_cache: Path) -> Iterator[Workspace]:
    """``radai serve`` holding the studies and users above, every study read by its models."""
    folder = tmp_path_factory.mktemp("workspace")
    data_dir = folder / "data"
    settings: dict[str, Any] = {
        "data_dir": str(data_dir),
        "archive": {"stability_seconds": 1.0, "stability_poll_seconds": 0.2},
        "models": {"cache_dir": str(models_cache)},
        "auth": FAST_ARGON2,
        "worklist": {"refresh_seconds": 3},
    }
    config = write_config(folder / "setup.toml", settings)
    _load(data_dir, config, folder)
    server = start_radai(data_dir, extra={k: v for k, v in settings.items() if k != "data_dir"})
    try:
        ws = Workspace(server, {f"E2E{i:03d}": (r[1], r[4]) for i, r in enumerate(RADIOGRAPHS)}, {})
        # The first start exports the Keras model to ONNX (minutes on two cores).
        _wait_until_read(ws, expected=len(RADIOGRAPHS) + 1, timeout=1200)
        yield ws
    finally:
        stop_process(server.proc)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    # The viewer needs several seconds on two busy cores: waits allow for it.
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless, without a GPU."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is not installed; `make test` installs Debian's chromium")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def context(browser: Browser, workspace: Workspace) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) on the workspace's origin."""
    ctx = browser.new_context(base_url=workspace.base_url, viewport=VIEWPORT)
    ctx.set_default_timeout(30_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, user: str, *, next_url: str = "/worklist") -> None:
    """Sign in through radai's login page as a person does."""
    page.goto(next_url)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the test's screenshots go: its temporary folder, or ``RADAI_SCREENSHOTS_DIR``."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    folder = Path(chosen) if chosen else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
