"""A real radai with a de-identification key, real DICOM files carrying made-up identities,
and users (admin, vendor, radiologist) with bearer tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset

from radai.app import Radai, build_web_app
from radai.auth.roles import Role
from radai.config import Settings, load_settings
from radai.deid import PseudonymKey
from tests.auth.conftest import FAST_ARGON2, add_user, bearer, token_for
from tests.dicomweb.conftest import parse_multipart, sample
from tests.fixtures.data import to_bytes
from tests.fixtures.peers import free_port

__all__ = ["parse_multipart"]

#: The key the view runs with in these tests (the tests compute expected pseudonyms with it).
KEY = "vendor-view-test-key-7f3a9c1e5b2d"

#: Made-up identities written into real images; none of these may reach a vendor.
PATIENTS = {
    "a": {"PatientName": "Vendorscan^Lucinda^Quilla", "PatientID": "PID-4471-XQZ",
          "PatientBirthDate": "19630412", "AccessionNumber": "ACC99812ZZ",
          "ReferringPhysicianName": "Drcarrow^Helena", "InstitutionName": "Elsewhere Infirmary",
          "StudyID": "STUDY8841", "StudyDescription": "HEAD Vendorscan followup"},
    "b": {"PatientName": "Obrinkley^Tamsin", "PatientID": "PID-0093-KRW",
          "PatientBirthDate": "19580923", "AccessionNumber": "ACC55120QQ",
          "ReferringPhysicianName": "Fenwhistle^Aldous", "InstitutionName": "Northgate Clinic",
          "StudyID": "STUDY1207", "StudyDescription": "MR knee Obrinkley"},
}
#: Every date of the images is set to their patient's date (so a shifted date is recognisable).
DATES = {"a": "20210305", "b": "20191117"}


def identified(name: str, salt: str, patient: str) -> Dataset:
    """A real sample file with new UIDs and the made-up identity of ``patient``."""
    ds = sample(name, salt)
    date = DATES[patient]

    def set_dates(item: Dataset, elem: Any) -> None:
        if elem.VR == "DA" and elem.value:
            elem.value = date

    ds.walk(set_dates)
    for keyword, value in PATIENTS[patient].items():
        setattr(ds, keyword, value)
    return ds


def secrets_of(ds: Dataset, patient: str) -> list[str]:
    """Every identifying value of ``ds`` a vendor must never receive: names, IDs, dates, UIDs."""
    values = {v for k, v in PATIENTS[patient].items() if k != "StudyDescription"}
    for keyword in ("PatientName", "ReferringPhysicianName"):
        values.update(p for p in str(PATIENTS[patient][keyword]).split("^") if len(p) > 3)
    values.add(DATES[patient])
    uids: set[str] = set()

    def collect(item: Dataset, elem: Any) -> None:
        if elem.VR == "UI" and elem.value:
            for uid in (elem.value if isinstance(elem.value, list) else [elem.value]):
                if not str(uid).startswith("1.2.840.10008."):  # standard UIDs (SOP classes...)
                    uids.add(str(uid))

    ds.walk(collect)
    return sorted(values | uids)


def assert_none_of(secrets: list[str], content: bytes, what: str) -> None:
    found = [s for s in secrets if s.encode() in content]
    assert not found, f"{what} carries identifying values: {found}"


@dataclass
class World:
    """radai with users and a client; ``store`` puts real files into its archive."""

    radai: Radai
    client: TestClient
    admin: dict[str, str]
    vendor: dict[str, str]
    reader: dict[str, str]
    key: PseudonymKey = field(default_factory=lambda: PseudonymKey(KEY.encode()))

    def store(self, ds: Dataset) -> None:
        self.radai.archive.store(to_bytes(ds), source="test")

    def grant(self, *study_uids: str, username: str = "acme") -> httpx.Response:
        r = self.client.post("/api/v1/vendor/grants", headers=self.admin,
                             json={"username": username, "study_instance_uids": list(study_uids)})
        assert r.status_code == 201, r.text
        return r

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """A request as the vendor."""
        headers = {**self.vendor, **kwargs.pop("headers", {})}
        return self.client.get(url, headers=headers, **kwargs)

    def p(self, uid: str) -> str:
        """The pseudonym the view gives ``uid``."""
        return self.key.uid(uid)


def vendor_settings(tmp_path: Path, db_url: str, **extra: Any) -> Settings:
    deid = extra.pop("deid", {"key": KEY})
    return load_settings(data_dir=tmp_path / "data", database_url=db_url, http_port=free_port(),
                         dicom_port=free_port(), auth=FAST_ARGON2, deid=deid, **extra)


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    radai = Radai(vendor_settings(tmp_path, db_url))
    radai.prepare()
    try:
        add_user(radai, "root", Role.ADMIN)
        add_user(radai, "acme", Role.VENDOR)
        add_user(radai, "reader", Role.RADIOLOGIST)
        with TestClient(build_web_app(radai), follow_redirects=False) as client:
            yield World(radai, client, bearer(token_for(client, "root")), bearer(token_for(client, "acme")),
                        bearer(token_for(client, "reader")))
    finally:
        radai.stop()
