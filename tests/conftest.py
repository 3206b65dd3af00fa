"""Fixtures shared by the whole suite.

- ``postgres``: one private PostgreSQL server for the session (started, then stopped by PID).
- ``db_url``: parametrised over SQLite and PostgreSQL; every test gets a new empty database.
- ``settings`` / ``radai``: an in-process radai on that database with a temporary data folder.
- ``radai_server``: ``radai serve`` as a separate process on free ports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from radai.app import Radai
from radai.config import Settings, load_settings
from tests.fixtures.peers import (
    Postgres,
    RadaiServer,
    free_port,
    start_postgres,
    start_radai,
    stop_process,
)


@pytest.fixture(autouse=True)
def _no_radai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own RADAI_* settings."""
    for key in list(os.environ):
        if key.startswith("RADAI_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A private PostgreSQL server for the whole test session."""
    with start_postgres() as pg:
        yield pg


@pytest.fixture(scope="session")
def models_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache folder for the whole session, so the built-in Keras model is exported
    to ONNX once (minutes on two cores) however many tests use the real models.

    ``TEST_MODELS_CACHE`` names a folder to reuse across runs instead (local iteration).
    """
    reuse = os.environ.get("TEST_MODELS_CACHE")
    return Path(reuse) if reuse else tmp_path_factory.mktemp("models-cache")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new empty database: SQLite in the test's folder, or a database on ``postgres``."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'radai.db'}"
        return
    pg: Postgres = request.getfixturevalue("postgres")
    url = pg.create_database()
    try:
        yield url
    finally:
        pg.drop_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A new SQLite database, for tests that do not depend on the backend."""
    return f"sqlite:///{tmp_path / 'radai.db'}"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Settings for an in-process radai: temporary data folder, free ports, fast stability."""
    return load_settings(
        data_dir=tmp_path / "data", database_url=db_url, http_port=free_port(),
        dicom_port=free_port(), archive={"stability_seconds": 1.0, "stability_poll_seconds": 0.2},
    )


@pytest.fixture
def radai(settings: Settings) -> Iterator[Radai]:
    """A migrated radai with its indexer running (not serving)."""
    instance = Radai(settings)
    instance.prepare()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def radai_server(tmp_path: Path) -> Iterator[RadaiServer]:
    """``radai serve`` as a separate process, SQLite, stability after 1 s."""
    server = start_radai(tmp_path / "server", extra={"archive": {"stability_seconds": 1.0,
                                                                  "stability_poll_seconds": 0.2}})
    try:
        yield server
    finally:
        stop_process(server.proc)
