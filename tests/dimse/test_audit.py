"""Reads over DIMSE leave audit rows: DCMTK's findscu, movescu and getscu against a served radai.

After each operation the auditor's API (/api/v1/audit) shows one row per study with the
calling AE title, the peer's address, the action and the outcome with its DIMSE status;
a move to an unknown destination and a refused association are denied. No log line
carries patient data. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread

from radai.app import build_web_app
from radai.auth.roles import Role
from radai.config import DimsePeer, Settings
from tests.auth.conftest import FAST_ARGON2, add_user, bearer, token_for
from tests.dimse.conftest import Served, serve
from tests.fixtures.data import ct_series, to_bytes
from tests.fixtures.peers import LOOPBACK, free_port, require_program, stop_process, wait_for_port

SCU = "AUDITSCU"
STORESCP = "AUDITDEST"
#: Patient A has two studies (a CT series of 2 and one of 1 slice), patient B one.
STUDY_A1, STUDY_A2, STUDY_B = ("1.2.826.0.1.3680043.10.996.1", "1.2.826.0.1.3680043.10.996.2",
                               "1.2.826.0.1.3680043.10.996.3")
PATIENT_A, PATIENT_B = "P-AUDIT-A", "P-AUDIT-B"
NAMES = {PATIENT_A: "Audit^Alice", PATIENT_B: "Audit^Bob"}
A801 = 0xA801


def dcmtk(program: str, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK program (failing the test if it is not installed), Nagle off as elsewhere."""
    proc = subprocess.run([require_program(program), *(str(a) for a in args)], capture_output=True,
                          text=True, env={**os.environ, "TCP_NODELAY": "1"}, timeout=120)
    if check and proc.returncode != 0:
        pytest.fail(f"{program} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class Audited:
    """radai serving DIMSE (and its web app for the auditor), a DCMTK storescp it knows."""

    served: Served
    client: TestClient
    auditor: dict[str, str]
    storescp_folder: Path

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        """The audit rows the auditor sees, oldest first (the auditor's own reads left out)."""
        r = self.client.get("/api/v1/audit", params={"limit": 1000, **filters}, headers=self.auditor)
        assert r.status_code == 200, r.text
        return [row for row in reversed(r.json()["items"]) if row["action"].startswith("dimse.")]

    def scu(self, program: str, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A DCMTK query/retrieve tool calling radai as AUDITSCU."""
        return dcmtk(program, "-aet", SCU, "-aec", self.served.ae_title, *args, LOOPBACK,
                     str(self.served.port), check=check)


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    folder = tmp_path / "storescp"
    folder.mkdir()
    port = free_port()
    proc = subprocess.Popen([require_program("storescp"), "-aet", STORESCP, "-od", str(folder), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "TCP_NODELAY": "1"})
    try:
        wait_for_port(port, proc)
        yield port, folder
    finally:
        stop_process(proc)


@pytest.fixture
def audited(settings: Settings, storescp: tuple[int, Path]) -> Iterator[Audited]:
    port, folder = storescp
    dimse = settings.dimse.model_copy(update={
        "peers": [DimsePeer(ae_title=STORESCP, host=LOOPBACK, port=port)],
        "allowed_calling_aets": [SCU]})
    auth = settings.auth.model_copy(update=FAST_ARGON2)
    for served in serve(settings.model_copy(update={"dimse": dimse, "auth": auth})):
        for study, patient, count in ((STUDY_A1, PATIENT_A, 2), (STUDY_A2, PATIENT_A, 1),
                                      (STUDY_B, PATIENT_B, 1)):
            for ds in ct_series(count, study_uid=study, series_uid=study + ".1", patient_id=patient):
                ds.PatientName = NAMES[patient]
                served.radai.archive.store(to_bytes(ds), source="import")
        add_user(served.radai, "auditor-1", Role.AUDITOR)
        with TestClient(build_web_app(served.radai), follow_redirects=False) as client:
            yield Audited(served, client, bearer(token_for(client, "auditor-1")), folder)


def _by_dimse_peer(row: dict[str, Any]) -> None:
    assert row["actor"] == SCU and row["actor_kind"] == "ae"
    assert row["client"] == LOOPBACK


def test_find_move_and_get_leave_one_row_per_study(audited: Audited, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # C-FIND at the study level: both of patient A's studies and patient B's.
    out = tmp_path / "find"
    out.mkdir()
    audited.scu("findscu", "-S", "-X", "-od", out, "-k", "QueryRetrieveLevel=STUDY",
                "-k", "StudyInstanceUID", "-k", "PatientName")
    assert len(list(out.glob("rsp*.dcm"))) == 3
    rows = audited.rows(action="dimse.c-find")
    assert sorted(r["study_uid"] for r in rows) == sorted([STUDY_A1, STUDY_A2, STUDY_B])
    for row in rows:
        _by_dimse_peer(row)
        assert row["outcome"] == "allowed" and row["status"] == 0x0000

    # C-MOVE of study A1 (two instances) to the storescp: one row for the study.
    audited.scu("movescu", "-aem", STORESCP, "-S", "-k", "QueryRetrieveLevel=STUDY",
                "-k", f"StudyInstanceUID={STUDY_A1}")
    assert len(list(audited.storescp_folder.iterdir())) == 2
    (move,) = audited.rows(action="dimse.c-move")
    _by_dimse_peer(move)
    assert (move["study_uid"], move["outcome"], move["status"]) == (STUDY_A1, "allowed", 0x0000)
    assert move["destination"] == STORESCP  # where the instances went

    # C-GET of one image of study B, and of the whole of patient A at the patient level.
    got = tmp_path / "get"
    got.mkdir()
    audited.scu("getscu", "-S", "-od", got, "-k", "QueryRetrieveLevel=STUDY",
                "-k", f"StudyInstanceUID={STUDY_B}")
    audited.scu("getscu", "-P", "-od", got, "-k", "QueryRetrieveLevel=PATIENT",
                "-k", f"PatientID={PATIENT_A}")
    assert len(list(got.iterdir())) == 4
    gets = audited.rows(action="dimse.c-get")
    assert [r["study_uid"] for r in gets[:1]] == [STUDY_B]
    assert sorted(r["study_uid"] for r in gets[1:]) == sorted([STUDY_A1, STUDY_A2])
    for row in gets + rows:
        _by_dimse_peer(row)
        assert row["destination"] is None  # back to the requestor
        assert row["outcome"] == "allowed" and row["status"] == 0x0000
    # The auditor can find every read of a study.
    assert {r["action"] for r in audited.rows(study_uid=STUDY_A1)} == {"dimse.c-find", "dimse.c-move",
                                                                       "dimse.c-get"}

    # radai's and pynetdicom's log lines (not the test client's own) hold no patient data.
    secrets = [*NAMES.values(), PATIENT_A, PATIENT_B, STUDY_A1, STUDY_A2, STUDY_B]
    served_records = [r for r in caplog.records if r.name.startswith(("radai", "pynetdicom"))]
    assert any(r.name.startswith("pynetdicom.service_class") for r in served_records)
    for record in served_records:
        text = record.getMessage()
        assert not any(s in text for s in secrets), text


def test_patient_level_find_covers_the_patients_studies(audited: Audited, tmp_path: Path) -> None:
    out = tmp_path / "find"
    out.mkdir()
    audited.scu("findscu", "-P", "-X", "-od", out, "-k", "QueryRetrieveLevel=PATIENT",
                "-k", f"PatientID={PATIENT_A}", "-k", "PatientName")
    (found,) = [dcmread(p) for p in out.glob("rsp*.dcm")]
    assert str(found.PatientName) == NAMES[PATIENT_A]
    # The patient's demographics belong to both of the patient's studies.
    assert sorted(r["study_uid"] for r in audited.rows(action="dimse.c-find")) == sorted([STUDY_A1, STUDY_A2])


def test_find_without_matches_leaves_one_row_without_a_study(audited: Audited) -> None:
    audited.scu("findscu", "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=NOBODY",
                "-k", "StudyInstanceUID")
    (row,) = audited.rows(action="dimse.c-find")
    _by_dimse_peer(row)
    assert (row["study_uid"], row["outcome"], row["status"]) == (None, "allowed", 0x0000)


def test_move_to_an_unknown_destination_is_denied(audited: Audited) -> None:
    proc = audited.scu("movescu", "-v", "-aem", "NOWHERE", "-S", "-k", "QueryRetrieveLevel=STUDY",
                       "-k", f"StudyInstanceUID={STUDY_B}", check=False)
    assert "MoveDestinationUnknown" in proc.stdout + proc.stderr
    assert list(audited.storescp_folder.iterdir()) == []
    (row,) = audited.rows(action="dimse.c-move")
    _by_dimse_peer(row)
    # What was asked for, refused, with the status the requestor got.
    assert (row["study_uid"], row["outcome"], row["status"]) == (STUDY_B, "denied", A801)
    assert row["destination"] == "NOWHERE"  # the destination asked for
    assert audited.rows(outcome="denied") == [row]


def test_refused_association_is_a_denied_attempt(audited: Audited) -> None:
    proc = dcmtk("findscu", "-aet", "INTRUDER", "-aec", audited.served.ae_title, "-S",
                 "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", LOOPBACK,
                 str(audited.served.port), check=False)
    assert proc.returncode != 0
    (row,) = audited.rows()
    assert (row["actor"], row["actor_kind"], row["action"]) == ("INTRUDER", "ae", "dimse.association")
    assert (row["study_uid"], row["outcome"], row["client"]) == (None, "denied", LOOPBACK)
