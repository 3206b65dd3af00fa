"""C-FIND in the Patient Root and Study Root models at every level, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import build_context, evt
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND

from tests.dimse.conftest import PATIENT_ROOT_FIND, STUDY_ROOT_FIND, Served
from tests.fixtures.data import ct_series, pydicom_data, to_bytes, with_new_uids

CT_STUDY, CT_SERIES = "1.2.826.0.1.3680043.10.999.1", "1.2.826.0.1.3680043.10.999.1.1"


@pytest.fixture
def archive(indexed_server: Served) -> Served:
    """Two patients: a CT study of 3 slices and an MR study (name with umlauts, ISO_IR 100)."""
    for ds in ct_series(3, study_uid=CT_STUDY, series_uid=CT_SERIES, patient_id="P-CT-1"):
        ds.PatientName = "Doe^Jane"
        ds.StudyDate = "20240315"
        ds.AccessionNumber = "ACC-1"
        indexed_server.radai.archive.store(to_bytes(ds), source="import")
    mr = with_new_uids(dcmread(pydicom_data("MR2_UNCR.dcm")), "find")
    mr.SpecificCharacterSet = "ISO_IR 100"
    mr.PatientName = "Müller^Jürgen"
    mr.PatientID = "P-MR-2"
    mr.StudyDate = "20230101"
    indexed_server.radai.archive.store(to_bytes(mr), source="import")
    return indexed_server


def _find(served: Served, model: str, query: Dataset) -> list[tuple[int, Dataset | None]]:
    assoc = served.associate([build_context(model)])
    assert assoc.is_established
    try:
        return [(int(st.Status), ident) for st, ident in assoc.send_c_find(query, model)]
    finally:
        assoc.release()


def _matches(served: Served, model: str, **keys: object) -> list[Dataset]:
    q = Dataset()
    for kw, value in keys.items():
        setattr(q, kw, value)
    responses = _find(served, model, q)
    assert responses[-1] == (0x0000, None)
    assert all(status == 0xFF00 for status, _ in responses[:-1])
    return [ident for _, ident in responses[:-1] if ident is not None]


def test_patient_level_patient_root(archive: Served) -> None:
    found = _matches(archive, PATIENT_ROOT_FIND, QueryRetrieveLevel="PATIENT", PatientID="",
                     PatientName="", NumberOfPatientRelatedStudies="", NumberOfPatientRelatedInstances="")
    by_id = {str(d.PatientID): d for d in found}
    assert set(by_id) == {"P-CT-1", "P-MR-2"}
    assert str(by_id["P-CT-1"].PatientName) == "Doe^Jane"
    assert by_id["P-CT-1"].NumberOfPatientRelatedInstances == 3
    assert by_id["P-MR-2"].NumberOfPatientRelatedStudies == 1
    for d in found:
        assert d.QueryRetrieveLevel == "PATIENT"
        assert d.SpecificCharacterSet == "ISO_IR 192"
        assert d.RetrieveAETitle == archive.ae_title
        assert d.InstanceAvailability == "ONLINE"


def test_study_level_patient_root_by_patient_id(archive: Served) -> None:
    (study,) = _matches(archive, PATIENT_ROOT_FIND, QueryRetrieveLevel="STUDY", PatientID="P-CT-1",
                        StudyInstanceUID="", StudyDate="", AccessionNumber="", ModalitiesInStudy="",
                        NumberOfStudyRelatedInstances="")
    assert study.StudyInstanceUID == CT_STUDY
    assert study.StudyDate == "20240315" and study.AccessionNumber == "ACC-1"
    assert study.ModalitiesInStudy == "CT" and study.NumberOfStudyRelatedInstances == 3


def test_study_root_matching_types(archive: Served) -> None:
    # Wildcard person name, case-insensitive; non-ASCII values come back in UTF-8.
    (mr,) = _matches(archive, STUDY_ROOT_FIND, QueryRetrieveLevel="STUDY", PatientName="müll*",
                     StudyInstanceUID="")
    assert str(mr.PatientName) == "Müller^Jürgen"
    # Date range.
    (ct,) = _matches(archive, STUDY_ROOT_FIND, QueryRetrieveLevel="STUDY", StudyDate="20240101-20241231",
                     StudyInstanceUID="")
    assert ct.StudyInstanceUID == CT_STUDY
    # List of UIDs.
    both = _matches(archive, STUDY_ROOT_FIND, QueryRetrieveLevel="STUDY",
                    StudyInstanceUID=[CT_STUDY, str(mr.StudyInstanceUID)])
    assert len(both) == 2
    assert _matches(archive, STUDY_ROOT_FIND, QueryRetrieveLevel="STUDY", PatientID="nobody") == []


def test_series_and_image_levels(archive: Served) -> None:
    (series,) = _matches(archive, STUDY_ROOT_FIND, QueryRetrieveLevel="SERIES", StudyInstanceUID=CT_STUDY,
                         SeriesInstanceUID="", Modality="", NumberOfSeriesRelatedInstances="")
    assert series.SeriesInstanceUID == CT_SERIES and series.Modality == "CT"
    assert series.NumberOfSeriesRelatedInstances == 3
    assert series.StudyInstanceUID == CT_STUDY
    images = _matches(archive, PATIENT_ROOT_FIND, QueryRetrieveLevel="IMAGE", PatientID="P-CT-1",
                      StudyInstanceUID=CT_STUDY, SeriesInstanceUID=CT_SERIES, SOPInstanceUID="",
                      InstanceNumber="", SliceThickness="", ImageType="")
    assert sorted(int(d.InstanceNumber) for d in images) == [1, 2, 3]
    for d in images:
        assert d.SOPInstanceUID and d.SeriesInstanceUID == CT_SERIES
        # Keys the index does not hold come back, empty.
        assert "SliceThickness" in d and d.SliceThickness in (None, "")
        assert "ImageType" in d and not d.ImageType


def _status_of(served: Served, model: str, **keys: object) -> int:
    q = Dataset()
    for kw, value in keys.items():
        setattr(q, kw, value)
    responses = _find(served, model, q)
    assert len(responses) == 1
    return responses[0][0]


def test_invalid_identifiers_get_failure_statuses(archive: Served) -> None:
    assert _status_of(archive, STUDY_ROOT_FIND, PatientName="*") == 0xA900  # no Query/Retrieve Level
    assert _status_of(archive, STUDY_ROOT_FIND, QueryRetrieveLevel="PATIENT", PatientID="") == 0xA900
    assert _status_of(archive, STUDY_ROOT_FIND, QueryRetrieveLevel="FRAME", PatientID="") == 0xA900
    assert _status_of(archive, STUDY_ROOT_FIND, QueryRetrieveLevel="STUDY", SOPInstanceUID="") == 0xA900
    assert _status_of(archive, STUDY_ROOT_FIND, QueryRetrieveLevel="STUDY", StudyDate="last week") == 0xA900
    assert archive.echo_ok()


def test_undecodable_identifier_is_unable_to_process(archive: Served) -> None:
    received: list[int] = []

    def on_message(event: evt.Event) -> None:
        if isinstance(event.message, C_FIND_RSP):
            received.append(int(event.message.command_set.Status))

    assoc = archive.associate([build_context(STUDY_ROOT_FIND, ["1.2.840.10008.1.2.1"])],
                              evt_handlers=[(evt.EVT_DIMSE_RECV, on_message)])
    assert assoc.is_established
    try:
        req = C_FIND()
        req.MessageID = 7
        req.AffectedSOPClassUID = STUDY_ROOT_FIND
        req.Priority = 2
        # An element header promising far more bytes than follow.
        req.Identifier = BytesIO(b"\x08\x00\x52\x00CS\x06\x00STUDY \x10\x00\x10\x00PN\xff\x7fDoe")
        assoc.dimse.send_msg(req, assoc.accepted_contexts[0].context_id)
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        assoc.release()
    assert len(received) == 1 and 0xC000 <= received[0] <= 0xCFFF
    assert archive.echo_ok()
