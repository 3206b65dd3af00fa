"""C-MOVE to a configured peer and C-GET on the requestor's association, on SQLite and PostgreSQL.

The move destination is a real pynetdicom storage SCP listening on its own loopback port.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import AE, build_context, evt
from pynetdicom.transport import ThreadedAssociationServer

from radai.config import DimsePeer, Settings
from tests.dimse.conftest import (
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    Served,
    get_roles,
    serve,
)
from tests.fixtures.data import ct_series, sample_for_transfer_syntax, to_bytes, with_new_uids
from tests.fixtures.peers import LOOPBACK, free_port

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
STUDY, SERIES = "1.2.826.0.1.3680043.10.998.1", "1.2.826.0.1.3680043.10.998.1.1"


@dataclass
class StoreScp:
    """A pynetdicom storage SCP: SOP Instance UID → (transfer syntax, data set bytes) received."""

    port: int
    refuse: set[str] = field(default_factory=set)
    received: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    def on_store(self, event: evt.Event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        if uid in self.refuse:
            return 0xA700
        self.received[uid] = (str(event.context.transfer_syntax), event.encoded_dataset(include_meta=False))
        return 0x0000


@pytest.fixture
def dest_port() -> int:
    return free_port()


@pytest.fixture
def start_dest(dest_port: int) -> Iterator[Callable[..., StoreScp]]:
    """Starts the move destination DEST on ``dest_port`` accepting the given transfer syntaxes."""
    servers: list[ThreadedAssociationServer] = []

    def start(syntaxes: list[str], refuse: set[str] | None = None) -> StoreScp:
        scp = StoreScp(dest_port, refuse or set())
        ae = AE(ae_title="DEST")
        for uid in (CT, MR):
            ae.add_supported_context(uid, syntaxes)
        servers.append(ae.start_server((LOOPBACK, dest_port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, scp.on_store)]))
        return scp

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture
def archive(settings: Settings, dest_port: int) -> Iterator[Served]:
    """radai knowing the destination DEST, holding a CT series of 3 and a JPEG 2000 MR in one study."""
    dimse = settings.dimse.model_copy(update={"peers": [DimsePeer(ae_title="DEST", host=LOOPBACK,
                                                                  port=dest_port)]})
    for served in serve(settings.model_copy(update={"dimse": dimse})):
        for ds in ct_series(3, study_uid=STUDY, series_uid=SERIES, patient_id="P-RET-1"):
            served.radai.archive.store(to_bytes(ds), source="import")
        mr = with_new_uids(dcmread(sample_for_transfer_syntax(J2K_LOSSLESS)), "retrieve")
        mr.StudyInstanceUID, mr.PatientID = STUDY, "P-RET-1"
        served.radai.archive.store(to_bytes(mr), source="import")
        yield served


def _stored(served: Served) -> dict[str, bytes]:
    return {inst.sop_instance_uid: served.radai.storage.path(inst.path).read_bytes()
            for inst in served.radai.archive.study_instances(STUDY)}


def _class_of(part10: bytes) -> str:
    return str(dcmread(io.BytesIO(part10), stop_before_pixels=True).SOPClassUID)


def _body(part10: bytes) -> bytes:
    """The data set of a Part 10 file, without preamble and File Meta Information."""
    meta = dcmread(io.BytesIO(part10), stop_before_pixels=True).file_meta
    return part10[132 + 12 + meta.FileMetaInformationGroupLength:]


def _pixels(body: bytes, ts: str) -> np.ndarray:
    ds = dcmread(io.BytesIO(body), force=True)
    ds.file_meta = Dataset()
    ds.file_meta.TransferSyntaxUID = ts
    return ds.pixel_array


def _identifier(level: str, **keys: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for kw, value in keys.items():
        setattr(ds, kw, value)
    return ds


@dataclass(frozen=True)
class Response:
    """One C-MOVE/C-GET response: status, the response's counts, its Identifier (if any)."""

    status: int
    rsp: Dataset
    identifier: Dataset | None

    def failed_uids(self) -> set[str]:
        """Failed SOP Instance UID List (0008,0058) of a final response."""
        assert self.identifier is not None
        value = self.identifier.FailedSOPInstanceUIDList
        return {str(v) for v in value} if isinstance(value, list | MultiValue) else {str(value)}

    @property
    def counts(self) -> tuple[int, int, int]:
        """(completed, failed, warning) sub-operations."""
        return (int(self.rsp.NumberOfCompletedSuboperations), int(self.rsp.NumberOfFailedSuboperations),
                int(self.rsp.NumberOfWarningSuboperations))


def _move(served: Served, model: str, identifier: Dataset, destination: str = "DEST") -> list[Response]:
    assoc = served.associate([build_context(model)])
    assert assoc.is_established
    try:
        return [Response(int(st.Status), st, ident)
                for st, ident in assoc.send_c_move(identifier, destination, model)]
    finally:
        assoc.release()


def test_move_sends_instances_as_stored_and_decompresses_only_when_needed(
        archive: Served, start_dest: Callable[..., StoreScp]) -> None:
    # The destination takes uncompressed syntaxes only: the JPEG 2000 MR goes decompressed.
    dest = start_dest([EXPLICIT_LE, IMPLICIT_LE])
    responses = _move(archive, STUDY_ROOT_MOVE, _identifier("STUDY", StudyInstanceUID=STUDY))
    assert responses[-1].status == 0x0000
    assert responses[-1].counts == (4, 0, 0)
    assert [r.status for r in responses[:-1]] == [0xFF00] * 4
    stored = _stored(archive)
    assert set(dest.received) == set(stored)
    for uid, (ts, body) in dest.received.items():
        if _class_of(stored[uid]) == MR:
            assert ts in (EXPLICIT_LE, IMPLICIT_LE)
            original = dcmread(io.BytesIO(stored[uid])).pixel_array
            assert np.array_equal(_pixels(body, ts), original)
        else:
            assert ts == EXPLICIT_LE and body == _body(stored[uid])


def test_move_keeps_the_compressed_form_when_the_peer_takes_it(
        archive: Served, start_dest: Callable[..., StoreScp]) -> None:
    dest = start_dest([J2K_LOSSLESS, EXPLICIT_LE])
    responses = _move(archive, PATIENT_ROOT_MOVE, _identifier("PATIENT", PatientID="P-RET-1"))
    assert responses[-1].status == 0x0000
    stored = _stored(archive)
    for uid, (ts, body) in dest.received.items():
        assert body == _body(stored[uid])
        assert ts == (J2K_LOSSLESS if _class_of(stored[uid]) == MR else EXPLICIT_LE)


def test_move_counts_failed_sub_operations(archive: Served, start_dest: Callable[..., StoreScp]) -> None:
    stored = _stored(archive)
    refused = min(u for u, b in stored.items() if _class_of(b) == CT)
    dest = start_dest([EXPLICIT_LE, J2K_LOSSLESS], refuse={refused})
    responses = _move(archive, STUDY_ROOT_MOVE, _identifier("SERIES", StudyInstanceUID=STUDY,
                                                            SeriesInstanceUID=SERIES))
    final = responses[-1]
    assert final.status == 0xB000
    assert final.counts == (2, 1, 0)
    assert final.failed_uids() == {refused}
    assert len(dest.received) == 2 and refused not in dest.received


def test_move_every_sub_operation_failing(archive: Served, start_dest: Callable[..., StoreScp]) -> None:
    start_dest([EXPLICIT_LE], refuse=set(_stored(archive)))
    final = _move(archive, STUDY_ROOT_MOVE, _identifier("STUDY", StudyInstanceUID=STUDY))[-1]
    assert final.status == 0xA702
    assert final.counts == (0, 4, 0)
    assert final.failed_uids() == set(_stored(archive))


def test_move_to_an_unknown_destination(archive: Served, start_dest: Callable[..., StoreScp]) -> None:
    dest = start_dest([EXPLICIT_LE])
    responses = _move(archive, STUDY_ROOT_MOVE, _identifier("STUDY", StudyInstanceUID=STUDY),
                      destination="NOBODY")
    assert [r.status for r in responses] == [0xA801]
    assert dest.received == {}


def test_move_identifier_without_its_unique_key(archive: Served, start_dest: Callable[..., StoreScp]) -> None:
    dest = start_dest([EXPLICIT_LE])
    responses = _move(archive, STUDY_ROOT_MOVE, _identifier("SERIES", StudyInstanceUID=STUDY))
    assert len(responses) == 1 and 0xC000 <= responses[0].status <= 0xCFFF
    responses = _move(archive, STUDY_ROOT_MOVE, _identifier("PATIENT", PatientID="P-RET-1"))
    assert len(responses) == 1 and 0xC000 <= responses[0].status <= 0xCFFF
    assert dest.received == {}
    assert archive.echo_ok()


def test_move_with_nothing_matching(archive: Served, start_dest: Callable[..., StoreScp]) -> None:
    start_dest([EXPLICIT_LE])
    final = _move(archive, STUDY_ROOT_MOVE, _identifier("STUDY", StudyInstanceUID="1.2.3.4"))[-1]
    assert final.status == 0x0000 and final.counts == (0, 0, 0)


def _get(served: Served, model: str, identifier: Dataset, syntaxes: list[str]
         ) -> tuple[list[Response], dict[str, tuple[str, bytes]]]:
    received: dict[str, tuple[str, bytes]] = {}

    def on_store(event: evt.Event) -> int:
        received[str(event.request.AffectedSOPInstanceUID)] = (
            str(event.context.transfer_syntax), event.encoded_dataset(include_meta=False))
        return 0x0000

    contexts = [build_context(model), *(build_context(uid, [ts]) for uid in (CT, MR) for ts in syntaxes)]
    assoc = served.associate(contexts, ext_neg=get_roles([CT, MR]),
                             evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    try:
        responses = [Response(int(st.Status), st, ident) for st, ident in assoc.send_c_get(identifier, model)]
    finally:
        assoc.release()
    return responses, received


def test_get_returns_the_stored_bytes(archive: Served) -> None:
    responses, received = _get(archive, STUDY_ROOT_GET, _identifier("STUDY", StudyInstanceUID=STUDY),
                               [J2K_LOSSLESS, EXPLICIT_LE])
    assert responses[-1].status == 0x0000 and responses[-1].counts == (4, 0, 0)
    stored = _stored(archive)
    assert set(received) == set(stored)
    for uid, (_ts, body) in received.items():
        assert body == _body(stored[uid])  # byte for byte


def test_get_image_level_decompresses_for_a_requestor_without_the_syntax(archive: Served) -> None:
    stored = _stored(archive)
    mr_uid = next(u for u, b in stored.items() if _class_of(b) == MR)
    mr = dcmread(io.BytesIO(stored[mr_uid]))
    responses, received = _get(archive, PATIENT_ROOT_GET,
                               _identifier("IMAGE", PatientID="P-RET-1", StudyInstanceUID=STUDY,
                                           SeriesInstanceUID=mr.SeriesInstanceUID, SOPInstanceUID=mr_uid),
                               [EXPLICIT_LE])
    assert responses[-1].status == 0x0000
    ((ts, body),) = received.values()
    assert ts == EXPLICIT_LE
    assert np.array_equal(_pixels(body, ts), mr.pixel_array)


def test_get_when_the_requestor_takes_no_fitting_context(archive: Served) -> None:
    # Only JPEG 2000 offered: the uncompressed CT slices cannot be sent, the MR can.
    responses, received = _get(archive, STUDY_ROOT_GET, _identifier("STUDY", StudyInstanceUID=STUDY),
                               [J2K_LOSSLESS])
    final = responses[-1]
    assert final.status == 0xB000
    assert final.counts == (1, 3, 0)
    assert len(received) == 1
    assert len(final.failed_uids()) == 3
