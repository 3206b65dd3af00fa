"""Real files (pydicom-data, deid-data, CT_small) through the engine, checked by dciodvfy and dicognito."""

from __future__ import annotations

import copy
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest
from dicognito.anonymizer import Anonymizer
from pydicom import dcmread
from pydicom.dataset import Dataset

from radai.deid import Option, Profile, PseudonymKey, Region, deidentify
from radai.deid.files import deidentify_tree
from tests.fixtures.data import pydicom_data_dir, pydicom_test_file
from tests.fixtures.peers import require_program

KEY = PseudonymKey(b"radai corpus key 0123456789abcdef")
#: A strip at the top left, where scanners put names and dates.
REGIONS = (Region(0, 0, 32, 16),)


def deid_data_dir() -> Path:
    return Path(str(files("deid_data") / "data"))


def dciodvfy_errors(dciodvfy: str, path: Path) -> set[str]:
    result = subprocess.run([dciodvfy, str(path)], capture_output=True, timeout=60, check=False)
    text = (result.stdout + result.stderr).decode("latin-1")
    return {line.strip() for line in text.splitlines() if line.startswith("Error")}


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["pydicom-data", "deid-data"])
def test_real_files_stay_valid(corpus: str, tmp_path: Path) -> None:
    dciodvfy = require_program("dciodvfy")
    source = pydicom_data_dir() if corpus == "pydicom-data" else deid_data_dir()
    profile = Profile(
        options=frozenset(
            {Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, Option.RETAIN_SAFE_PRIVATE, Option.CLEAN_DESCRIPTORS}
        ),
        pixel_regions=REGIONS,
    )
    report = deidentify_tree([source], tmp_path / "out", profile=profile, key=KEY)
    # pydicom-data's truncated JPEG 2000 sample reads as an empty dataset.
    broken = {"emri_small_jpeg_2k_lossless_too_short.dcm"} if corpus == "pydicom-data" else set()
    assert {path.name for path, _ in report.failed} == broken
    # Compressed variants of one image share its SOP Instance UID: written once.
    assert len(report.written) >= (30 if corpus == "pydicom-data" else 12)
    # Only pixel data in the retired big-endian syntax cannot be blanked.
    assert all("Big Endian" in reason for _, reason in report.refused)
    new_errors = {}
    for original, output in report.written:
        added = dciodvfy_errors(dciodvfy, output) - dciodvfy_errors(dciodvfy, original)
        if added:
            new_errors[original.name] = sorted(added)
    assert new_errors == {}
    for _, output in report.written:
        ds = dcmread(output)
        assert ds.PatientIdentityRemoved == "YES"
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            if keyword in ds:
                assert ds[keyword].value.startswith("2.25.") and len(ds[keyword].value) <= 64


def changed_fields(before: Dataset, after: Dataset) -> dict[str, str]:
    """Top-level attribute -> removed | emptied | replaced | added."""
    out: dict[str, str] = {}
    for elem in before:
        name = elem.keyword or str(elem.tag)
        if elem.tag not in after:
            out[name] = "removed"
        elif after[elem.tag].value != elem.value:
            out[name] = "emptied" if after[elem.tag].value in (None, "", b"") else "replaced"
    for elem in after:
        if elem.tag not in before:
            out[elem.keyword or str(elem.tag)] = "added"
    return out


def test_compared_with_dicognito_on_ct_small() -> None:
    original = dcmread(pydicom_test_file("CT_small.dcm"))
    by_dicognito = copy.deepcopy(original)
    Anonymizer(seed="radai").anonymize(by_dicognito)
    by_radai = deidentify(original, profile=Profile(), key=KEY)
    theirs = changed_fields(original, by_dicognito)
    ours = changed_fields(original, by_radai)

    # Both replace the identifiers, the UIDs and the equipment's identity.
    both = {
        "PatientID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "FrameOfReferenceUID",
        "InstanceCreatorUID",
        "InstitutionName",
        "StationName",
        "SeriesDate",
        "SeriesTime",
        "ContentDate",
        "ContentTime",
        "InstanceCreationDate",
        "InstanceCreationTime",
    }
    assert {k for k in both if ours.get(k) == "replaced" and theirs.get(k) == "replaced"} == both
    # dicognito keeps the record plausible: it invents a patient name, study date and time,
    # accession number, study ID and acquisition date/time. PS3.15 gives these Z
    # (Patient's Name, Study Date/Time, Accession Number, Study ID) or X/Z
    # (Acquisition Date/Time), and radai takes Z: empty, never made-up values.
    emptied_by_us_invented_by_them = {
        "PatientName",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "AcquisitionDate",
        "AcquisitionTime",
    }
    for name in emptied_by_us_invented_by_them:
        assert (ours[name], theirs[name]) == ("emptied", "replaced"), name
    # radai applies rows of Table E.1-1 that dicognito leaves alone: descriptors and
    # comments (X), the patient's characteristics (X/Z, kept only under the Retain
    # Patient Characteristics Option), the referring physician (Z), the contrast agent
    # (Z/D -> keyed pseudonym), trailing padding (X), and every private attribute (X;
    # dicognito keeps private attributes).
    only_ours = {k for k in ours if k not in theirs}
    private = {k for k in only_ours if k.startswith("(")}
    assert private and all(int(k[1:5], 16) % 2 == 1 for k in private)
    assert only_ours - private == {
        "AdditionalPatientHistory",
        "ImageComments",
        "StudyDescription",
        "PatientAge",
        "PatientSex",
        "PatientWeight",
        "PatientBirthDate",
        "ReferringPhysicianName",
        "ContrastBolusAgent",
        "DataSetTrailingPadding",
        "TimezoneOffsetFromUTC",
        "PatientIdentityRemoved",
        "LongitudinalTemporalInformationModified",
        "DeidentificationMethodCodeSequence",
    }
    # dicognito adds an invented Institution Address; radai adds nothing that was not there
    # except the record of what it did (0012,0062-0064) and (0028,0303).
    assert {k for k in theirs if k not in ours} == {"InstitutionAddress"}
    assert ours["DeidentificationMethod"] == theirs["DeidentificationMethod"] == "added"
