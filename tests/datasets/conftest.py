"""An in-process radai (SQLite and PostgreSQL) with real studies to build datasets from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radai.app import Radai
from radai.config import Settings, load_settings
from tests.fixtures.peers import free_port
from tests.inference.packages import store_image

#: Identifying values given to the test studies, looked for byte by byte in exports.
IDENTITY = {
    "PatientName": "Scanlon^Harriet",
    "PatientID": "PID-7731-XK",
    "AccessionNumber": "ACC99341",
    "PatientBirthDate": "19610417",
    "InstitutionName": "St Elsewhere General Hospital",
    "ReferringPhysicianName": "Ehrlich^Paul",
}


def make_settings(tmp_path: Path, db_url: str, **extra: Any) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        http_port=free_port(),
        dicom_port=free_port(),
        **extra,
    )


@pytest.fixture
def ds_radai(tmp_path: Path, db_url: str) -> Iterator[Radai]:
    """A migrated radai on the test's database (not serving)."""
    radai = Radai(make_settings(tmp_path, db_url))
    radai.prepare()
    try:
        yield radai
    finally:
        radai.stop()


def store(radai: Radai, name: str, salt: str, **changes: Any) -> str:
    """Store a real image under new UIDs with the identity above (and ``changes``); its Study UID."""
    study_uid, _ = store_image(radai, name, salt, changes={**IDENTITY, **changes})
    return study_uid


def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "deid.key"
    path.write_bytes(b"0123456789abcdef0123456789abcdef")
    return path


# The auth tests' real app and clients, for the API tests.
from tests.auth.conftest import app, auth_radai, client, user_headers  # noqa: E402

__all__ = ["app", "auth_radai", "client", "user_headers"]
