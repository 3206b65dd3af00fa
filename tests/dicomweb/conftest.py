"""A real radai web app (SQLite and PostgreSQL) with a user allowed to read studies,
and helpers that build and read multipart/related bodies independently of radai's
own multipart code (the standard library's email parser reads responses)."""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import func, select

from radai.app import Radai, build_web_app
from radai.archive.models import Instance
from radai.auth.passwords import Passwords
from radai.auth.roles import Role
from radai.auth.service import create_user, issue_token
from radai.config import Settings
from tests.fixtures.data import pydicom_data, pydicom_test_file, to_bytes, with_new_uids

#: Cheap Argon2 parameters keep user creation fast; the hashes are real Argon2id.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}


@dataclass
class Web:
    """radai, its web app under a test client, and the token of a radiologist."""

    radai: Radai
    client: TestClient

    def stow(self, parts: Sequence[bytes], *, study: str | None = None,
             content_type: str | None = None, part_type: str = "application/dicom") -> httpx.Response:
        body, ct = multipart_body(parts, part_type=part_type)
        url = "/dicom-web/studies" + (f"/{study}" if study else "")
        return self.client.post(url, content=body, headers={"Content-Type": content_type or ct,
                                                            "Accept": "application/dicom+json"})

    def instance_count(self) -> int:
        with self.radai.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Instance)) or 0)

    def stored_files(self) -> list[Path]:
        return [p for p in self.radai.storage.root.rglob("*") if p.is_file()]


@pytest.fixture
def web(settings: Settings) -> Iterator[Web]:
    """radai on the ``settings`` database (SQLite or PostgreSQL) and a client with a token."""
    fast = settings.model_copy(update={"auth": settings.auth.model_copy(update=FAST_ARGON2)})
    radai = Radai(fast)
    radai.prepare()
    try:
        with radai.db.transaction() as s:
            user = create_user(s, username="reader", password="correct horse battery",
                               roles=[Role.RADIOLOGIST], passwords=Passwords(fast.auth))
            token = issue_token(s, user=user, kind="bearer", lifetime=timedelta(hours=1)).token
        with TestClient(build_web_app(radai), headers={"Authorization": f"Bearer {token}"}) as client:
            yield Web(radai, client)
    finally:
        radai.stop()


def multipart_body(parts: Sequence[bytes], *, part_type: str = "application/dicom") -> tuple[bytes, str]:
    """A multipart/related body (RFC 2387) and its Content-Type."""
    boundary = uuid.uuid4().hex
    out = b""
    for data in parts:
        out += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f'multipart/related; type="{part_type}"; boundary={boundary}'


@dataclass
class Part:
    content_type: str
    data: bytes


def parse_multipart(response: httpx.Response) -> list[Part]:
    """The parts of a multipart/related response, read by the standard library."""
    ct = response.headers["content-type"]
    assert ct.startswith("multipart/related"), ct
    raw = f"Content-Type: {ct}\r\nMIME-Version: 1.0\r\n\r\n".encode() + response.content
    msg = email.message_from_bytes(raw, policy=email.policy.HTTP)
    assert msg.is_multipart()
    parts = []
    for sub in msg.iter_parts():
        payload = sub.get_payload(decode=True)
        assert isinstance(payload, bytes)
        parts.append(Part(str(sub["Content-Type"]), payload))
    return parts


def sample(name: str, salt: str) -> Dataset:
    """A real file from pydicom-data or pydicom's test files, with UIDs of its own."""
    try:
        path = pydicom_data(name)
    except FileNotFoundError:
        path = pydicom_test_file(name)
    return with_new_uids(dcmread(path), salt)


def sample_bytes(name: str, salt: str) -> bytes:
    """``sample`` written as a PS3.10 file."""
    return to_bytes(sample(name, salt))
