"""Storing instances: files at hash-derived paths, idempotent re-sends, nothing half-stored."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import func, select

from radai.app import Radai
from radai.archive.indexer import IndexOutcome
from radai.archive.models import Instance, Patient, Series, Study
from radai.archive.parse import Rejection, RejectReason
from radai.archive.storage import relative_path_for
from radai.config import Settings
from tests.fixtures.data import ct_series, pydicom_data, to_bytes, with_new_uids


def _count(radai: Radai, model: type) -> int:
    with radai.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _files(radai: Radai) -> list[Path]:
    return [p for p in radai.storage.root.rglob("*") if p.is_file()]


def test_store_writes_the_bytes_as_received_at_a_hash_path(radai: Radai) -> None:
    data = pydicom_data("RG1_UNCI.dcm").read_bytes()
    out = radai.archive.store(data, source="import")
    assert out.outcome is IndexOutcome.STORED
    rel = relative_path_for(out.sop_instance_uid)
    digest = hashlib.sha256(out.sop_instance_uid.encode()).hexdigest()
    assert rel == f"{digest[:2]}/{digest[2:4]}/{digest}.dcm"
    stored = radai.storage.path(rel)
    assert stored.read_bytes() == data
    with radai.db.session() as s:
        inst = s.scalars(select(Instance)).one()
        assert inst.sha256 == hashlib.sha256(data).hexdigest()
        assert inst.size_bytes == len(data)
        assert inst.transfer_syntax_uid == "1.2.840.10008.1.2.1"


def test_no_tag_text_in_paths(radai: Radai) -> None:
    ds = dcmread(pydicom_data("RG1_UNCI.dcm"))
    ds.PatientName = "Secret^Patient"
    ds.PatientID = "ID-4711"
    radai.archive.store(to_bytes(ds), source="import")
    for path in radai.settings.data_dir.rglob("*"):
        assert "Secret" not in str(path) and "4711" not in str(path)


def test_same_instance_twice_is_stored_once(radai: Radai) -> None:
    data = pydicom_data("MR2_UNCR.dcm").read_bytes()
    first = radai.archive.store(data, source="dimse")
    second = radai.archive.store(data, source="dimse")
    assert first.outcome is IndexOutcome.STORED
    assert second.outcome is IndexOutcome.DUPLICATE
    assert _count(radai, Instance) == 1
    assert len(_files(radai)) == 1
    with radai.db.session() as s:
        study = s.scalars(select(Study)).one()
        assert study.number_of_instances == 1
        assert study.change_seq == 1


def test_a_different_object_with_a_known_uid_does_not_replace_the_first(radai: Radai) -> None:
    data = pydicom_data("MR2_UNCR.dcm").read_bytes()
    radai.archive.store(data, source="dimse")
    ds = dcmread(pydicom_data("MR2_UNCR.dcm"))
    ds.SeriesDescription = "changed"
    out = radai.archive.store(to_bytes(ds), source="dimse")
    assert out.outcome is IndexOutcome.DUPLICATE
    assert radai.archive.read(out.sop_instance_uid) == data


def test_hierarchy_and_counters(radai: Radai) -> None:
    study, series_a, series_b = "1.2.826.0.1.1", "1.2.826.0.1.1.1", "1.2.826.0.1.1.2"
    for ds in ct_series(3, study_uid=study, series_uid=series_a):
        radai.archive.store(to_bytes(ds), source="import")
    mr = dcmread(pydicom_data("MR2_UNCR.dcm"))
    mr.StudyInstanceUID, mr.SeriesInstanceUID, mr.PatientID = study, series_b, "P-CT-1"
    radai.archive.store(to_bytes(mr), source="import")
    with radai.db.session() as s:
        st = s.scalars(select(Study)).one()
        assert st.number_of_series == 2
        assert st.number_of_instances == 4
        assert st.modalities_in_study == "CT\\MR"
        assert {x.number_of_instances for x in s.scalars(select(Series))} == {3, 1}
        assert s.scalar(select(func.count()).select_from(Patient)) == 1


def test_studies_without_patient_id_are_not_merged(radai: Radai) -> None:
    for i in range(2):
        ds = with_new_uids(dcmread(pydicom_data("MR2_UNCR.dcm")), f"anon{i}")
        ds.PatientID = ""
        radai.archive.store(to_bytes(ds), source="import")
    assert _count(radai, Patient) == 2


def test_rejected_input_leaves_nothing(radai: Radai) -> None:
    ds = dcmread(pydicom_data("RG1_UNCI.dcm"))
    del ds.SOPInstanceUID
    with pytest.raises(Rejection) as info:
        radai.archive.store(to_bytes(ds), source="stow")
    assert info.value.reason is RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert _files(radai) == []
    assert _count(radai, Instance) == 0 and _count(radai, Study) == 0


def test_index_failure_removes_the_written_file(radai: Radai) -> None:
    radai.db.dispose()
    radai.indexer.stop()  # index synchronously, on a database that is gone
    if radai.db.is_sqlite:
        Path(radai.db.url.removeprefix("sqlite:///")).unlink()
        Path(radai.db.url.removeprefix("sqlite:///")).mkdir()  # cannot be opened any more
    else:
        with radai.db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE instances CASCADE")
    with pytest.raises(Rejection) as info:
        radai.archive.store(pydicom_data("RG1_UNCI.dcm").read_bytes(), source="dimse")
    assert info.value.reason is RejectReason.PROCESSING_FAILURE
    assert _files(radai) == []


def test_parallel_stores_of_one_study(radai: Radai) -> None:
    study, series = "1.2.826.0.1.9", "1.2.826.0.1.9.1"
    payloads = [to_bytes(ds) for ds in ct_series(24, study_uid=study, series_uid=series)]
    errors: list[BaseException] = []

    def send(chunk: list[bytes]) -> None:
        try:
            for data in chunk:
                radai.archive.store(data, source="dimse")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(payloads[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with radai.db.session() as s:
        st = s.scalars(select(Study)).one()
        assert st.number_of_instances == 24 and st.number_of_series == 1
        assert st.change_seq == 24
    assert len(_files(radai)) == 24


def _bare(part10: bytes) -> bytes:
    """The data set of a PS3.10 file: what a C-STORE request carries."""
    return part10[144 + int.from_bytes(part10[140:144], "little"):]


def test_bare_data_set_named_by_its_command_is_stored_with_a_file_meta_header(radai: Radai) -> None:
    ds = with_new_uids(dcmread(pydicom_data("MR2_UNCR.dcm")), "staged")
    body = _bare(to_bytes(ds))
    command = {"expected_sop_instance_uid": ds.SOPInstanceUID, "expected_sop_class_uid": ds.SOPClassUID,
               "transfer_syntax_uid": "1.2.840.10008.1.2.1"}
    out = radai.archive.store(body, source="dimse", **command)
    assert out.outcome is IndexOutcome.STORED
    (stored,) = _files(radai)  # no temporary file left beside it
    data = stored.read_bytes()
    assert data.endswith(body) and data[128:132] == b"DICM"
    assert dcmread(stored).file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    with radai.db.session() as s:
        assert s.scalars(select(Instance)).one().sha256 == hashlib.sha256(data).hexdigest()
    again = radai.archive.store(body, source="dimse", **command)
    assert again.outcome is IndexOutcome.DUPLICATE and len(_files(radai)) == 1


def test_refused_bare_data_set_leaves_no_file(radai: Radai) -> None:
    ds = with_new_uids(dcmread(pydicom_data("MR2_UNCR.dcm")), "refused")
    body = _bare(to_bytes(ds))
    # The command names another instance than the data set holds: refused after it was staged.
    with pytest.raises(Rejection) as info:
        radai.archive.store(body, source="dimse", expected_sop_instance_uid="1.2.826.0.1.3680043.10.993.1",
                            expected_sop_class_uid=ds.SOPClassUID, transfer_syntax_uid="1.2.840.10008.1.2.1")
    assert info.value.reason is RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS
    with pytest.raises(Rejection):
        radai.archive.store(body[:-4000], source="dimse", expected_sop_instance_uid=ds.SOPInstanceUID,
                            expected_sop_class_uid=ds.SOPClassUID, transfer_syntax_uid="1.2.840.10008.1.2.1")
    assert _files(radai) == []
    assert _count(radai, Instance) == 0


class _SyncSpy:
    """Records what each ``os.fsync`` flushed (the path behind the descriptor), then flushes it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.synced: list[str] = []
        self._lock = threading.Lock()
        real = os.fsync

        def fsync(fd: int) -> None:
            with self._lock:
                self.synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_acknowledged_instance_is_on_disk_with_its_name(radai: Radai,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """By default (archive.fsync) an instance's bytes and then its name are flushed before store returns."""
    assert radai.settings.archive.fsync
    spy = _SyncSpy(monkeypatch)
    ds = with_new_uids(dcmread(pydicom_data("MR2_UNCR.dcm")), "durable")
    part10 = radai.archive.store(to_bytes(ds), source="import")  # written at once
    bare = with_new_uids(dcmread(pydicom_data("MR2_UNCR.dcm")), "durable-bare")
    staged = radai.archive.store(  # staged while checked, as over DIMSE
        _bare(to_bytes(bare)), source="dimse", expected_sop_instance_uid=bare.SOPInstanceUID,
        expected_sop_class_uid=bare.SOPClassUID, transfer_syntax_uid="1.2.840.10008.1.2.1")
    for out in (part10, staged):
        final = radai.storage.path(relative_path_for(out.sop_instance_uid))
        assert final.is_file()
        # The bytes, under their temporary name beside the final one, then the folder.
        content = next(i for i, p in enumerate(spy.synced)
                       if Path(p).parent == final.parent and Path(p).name.startswith(f".{final.name}."))
        assert str(final.parent) in spy.synced[content + 1:]
    # New folders' own entries too, up to the storage root.
    assert str(radai.storage.root) in spy.synced


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_fsync_can_be_turned_off(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _SyncSpy(monkeypatch)
    archive = settings.archive.model_copy(update={"fsync": False})
    fast = Radai(settings.model_copy(update={"archive": archive}))
    fast.prepare()
    try:
        out = fast.archive.store(pydicom_data("MR2_UNCR.dcm").read_bytes(), source="import")
        assert fast.storage.path(relative_path_for(out.sop_instance_uid)).is_file()
        assert spy.synced == []
    finally:
        fast.stop()
