"""An in-process radai serving DIMSE on a free loopback port, and a real pynetdicom client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE, build_role
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

from radai.app import Radai
from radai.config import DimseSettings, Settings, load_settings
from tests.fixtures.peers import LOOPBACK, free_port

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"


@dataclass
class Served:
    """radai serving DIMSE in this process."""

    radai: Radai
    port: int
    ae_title: str

    def associate(self, contexts: list[str] | list[PresentationContext], *, calling_ae: str = "TESTSCU",
                  ext_neg: list[Any] | None = None, **kw: Any) -> Association:
        """A new association from a pynetdicom requestor."""
        ae = AE(ae_title=calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        for cx in contexts:
            if isinstance(cx, PresentationContext):
                ae.add_requested_context(cx.abstract_syntax, cx.transfer_syntax)
            else:
                ae.add_requested_context(cx)
        return ae.associate(LOOPBACK, self.port, ae_title=self.ae_title, ext_neg=ext_neg, **kw)

    def echo_ok(self) -> bool:
        """Whether a new association's C-ECHO succeeds (the server keeps serving)."""
        assoc = self.associate([VERIFICATION])
        try:
            return assoc.is_established and int(assoc.send_c_echo().Status) == 0
        finally:
            if assoc.is_established:
                assoc.release()


def serve(settings: Settings) -> Iterator[Served]:
    radai = Radai(settings)
    radai.start()
    try:
        yield Served(radai, settings.dicom_port, settings.ae_title)
    finally:
        radai.stop()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for an in-process radai on SQLite with the given DIMSE section."""
    def make(dimse: dict[str, Any] | None = None, database_url: str | None = None) -> Settings:
        return load_settings(
            data_dir=tmp_path / "data", http_port=free_port(), dicom_port=free_port(),
            host=LOOPBACK, database_url=database_url or f"sqlite:///{tmp_path / 'radai.db'}",
            dimse=DimseSettings(**(dimse or {})),
        )
    return make


@pytest.fixture
def server(make_settings: Callable[..., Settings]) -> Iterator[Served]:
    """radai on SQLite serving DIMSE with default settings."""
    yield from serve(make_settings())


@pytest.fixture
def indexed_server(settings: Settings) -> Iterator[Served]:
    """radai serving DIMSE on each database backend (SQLite and PostgreSQL)."""
    yield from serve(settings)


def get_roles(sop_classes: list[str]) -> list[Any]:
    """SCP/SCU Role Selection items taking the SCP role for C-GET sub-operations."""
    return [build_role(uid, scp_role=True) for uid in sop_classes]
