"""Result delivery survives a PACS outage and a radai restart (real peers only).

``radai serve`` runs as a process with two destinations: one Orthanc reached by C-STORE
(DIMSE) and another reached by STOW-RS (Orthanc's DICOMweb plugin). Both Orthancs are
down while studies arrive (sent with DCMTK's storescu) and the test model package makes
its results (SR, marked-up SC and SEG for a radiograph; a defect SR for an ultrasound
image it does not take). radai tries, fails and backs off; then it is stopped and
started again, the Orthancs come up, and every result object must arrive in each
Orthanc exactly once, identified by its SOP Instance UID.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom import dcmread

from tests.fixtures.data import pydicom_data, to_bytes, with_new_uids
from tests.fixtures.peers import (
    LOOPBACK,
    Orthanc,
    RadaiServer,
    make_orthanc,
    outbox_rows,
    radai_command,
    require_program,
    start_radai,
    stop_process,
)
from tests.results.conftest import copy_mask_model

PASSWORD = "delivery-reader-secret"


def _settings(dimse: Orthanc, web: Orthanc) -> dict[str, Any]:
    return {
        "archive": {"stability_seconds": 1.0, "stability_poll_seconds": 0.2},
        "inference": {"poll_seconds": 0.2},
        "models": {"builtin": False},
        "routing": {"rules": [{"name": "everything", "per": "study", "models": ["mask-test"]}]},
        "results": {
            "poll_seconds": 0.5, "retry_base_seconds": 0.5, "retry_max_seconds": 2.0,
            "destinations": [
                {"name": "pacs-dimse", "kind": "dimse", "ae_title": dimse.ae_title, "host": LOOPBACK,
                 "port": dimse.dicom_port},
                {"name": "pacs-web", "kind": "dicomweb", "url": f"{web.url}/dicom-web"},
            ],
        },
    }


@pytest.fixture
def orthancs(tmp_path: Path) -> Iterator[tuple[Orthanc, Orthanc]]:
    """Two Orthancs, configured but not started (the PACS is down)."""
    dimse = make_orthanc(tmp_path / "orthanc-dimse", ae_title="PACSDIMSE", start=False)
    web = make_orthanc(tmp_path / "orthanc-web", ae_title="PACSWEB", start=False)
    try:
        yield dimse, web
    finally:
        dimse.stop()
        web.stop()


def _send_studies(server: RadaiServer, folder: Path) -> list[str]:
    """A CR chest radiograph and an ultrasound image, each its own study, sent by storescu."""
    folder.mkdir(parents=True, exist_ok=True)
    studies, files = [], []
    for name in ("RG1_UNCI.dcm", "US1_UNCR.dcm"):
        ds = with_new_uids(dcmread(pydicom_data(name)), f"delivery-{name}")
        path = folder / f"{len(files)}.dcm"
        path.write_bytes(to_bytes(ds))
        files.append(str(path))
        studies.append(str(ds.StudyInstanceUID))
    subprocess.run([require_program("storescu"), "-aec", server.ae_title, LOOPBACK, str(server.dicom_port),
                    *files], check=True, capture_output=True, timeout=120)
    return studies


def _token(server: RadaiServer) -> str:
    subprocess.run([*radai_command(), "users", "add", "reader", "--role", "radiologist",
                    "--password-stdin", "--config", str(server.config_file)],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True, env=server.env,
                   timeout=120)
    r = httpx.post(server.base_url + "/api/v1/auth/token",
                   data={"username": "reader", "password": PASSWORD}, timeout=60)
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def _results(server: RadaiServer, token: str, study: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.base_url}/api/v1/studies/{study}/results",
                  headers={"Authorization": f"Bearer {token}"}, timeout=60)
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def _wait(check: Callable[[], bool], what: str, server: RadaiServer, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached within {timeout} s; radai log:\n{server.log_text()[-4000:]}")


def _orthanc_uids(orthanc: Orthanc) -> list[str]:
    """SOP Instance UIDs of every instance Orthanc holds (one entry per stored instance)."""
    return [orthanc.get(f"/instances/{i}/simplified-tags").json()["SOPInstanceUID"]
            for i in orthanc.get("/instances").json()]


@pytest.mark.slow
def test_results_reach_both_pacs_exactly_once_after_outage_and_restart(
        tmp_path: Path, orthancs: tuple[Orthanc, Orthanc]) -> None:
    dimse, web = orthancs
    data_dir = tmp_path / "radai"
    copy_mask_model(data_dir)
    settings = _settings(dimse, web)
    server = start_radai(data_dir, extra=settings)
    try:
        token = _token(server)
        studies = _send_studies(server, tmp_path / "send")

        def all_ready() -> bool:
            results = [_results(server, token, s) for s in studies]
            return all(len(r) == 1 and r[0]["state"] == "ready" for r in results)

        _wait(all_ready, "results of both studies", server)
        (findings,), (defect,) = (_results(server, token, s) for s in studies)
        assert findings["status"] == "findings" and defect["status"] == "defect"
        assert sorted(o["kind"] for o in findings["objects"]) == ["sc", "seg", "sr"]
        assert [o["kind"] for o in defect["objects"]] == ["sr"]
        expected = {o["sopInstanceUID"] for o in findings["objects"] + defect["objects"]}

        # Both PACS are down: every object has been tried and is waiting for another try.
        _wait(lambda: len(outbox_rows(data_dir)) == 2 * len(expected)
              and all(r["attempts"] >= 1 for r in outbox_rows(data_dir)), "failed first tries", server)
        assert {r["state"] for r in outbox_rows(data_dir)} == {"pending"}
    finally:
        stop_process(server.proc)

    # radai comes back (same data folder and database), and so do the PACS.
    server = start_radai(data_dir, extra=settings)
    try:
        dimse.start()
        web.start()
        _wait(lambda: {r["state"] for r in outbox_rows(data_dir)} == {"delivered"},
              "every delivery done", server)
        rows = outbox_rows(data_dir)
        assert {(r["uid"], r["destination"]) for r in rows} == {
            (uid, dest) for uid in expected for dest in ("pacs-dimse", "pacs-web")}
        assert all(r["successes"] == 1 and r["attempts"] >= 2 for r in rows), json.dumps(rows)
        time.sleep(3.0)  # a few more outbox passes: nothing is sent again
        for orthanc in (dimse, web):
            uids = _orthanc_uids(orthanc)
            assert sorted(uids) == sorted(expected), f"{orthanc.ae_title}: {uids}"
        assert {r["successes"] for r in outbox_rows(data_dir)} == {1}
    finally:
        stop_process(server.proc)
