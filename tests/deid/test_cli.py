"""``radai deid IN OUT`` end to end on a folder holding a multi-series study."""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from radai.deid import PseudonymKey
from radai.uids import derived_uid
from tests.fixtures.data import ct_series, pydicom_data
from tests.fixtures.peers import radai_command

STUDY = derived_uid("deid-cli", "study")
SERIES_A = derived_uid("deid-cli", "series-a")
SERIES_B = derived_uid("deid-cli", "series-b")
FRAME = derived_uid("deid-cli", "frame")
PATIENT = "PAT-7734-DOE"
NAME = "Doe^Jonathan"
KEY_BYTES = b"cli test key 0123456789abcdef0123"


def reference(ds: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    return item


def write_study(folder: Path) -> list[Dataset]:
    """Two CT series of one study; the second derived from the first (Source Image Sequence)."""
    # ct_series yields shallow copies of one template that share their elements: take
    # a deep copy of each as it comes.
    first = [
        copy.deepcopy(ds) for ds in ct_series(2, study_uid=STUDY, series_uid=SERIES_A, patient_id=PATIENT)
    ]
    second = [
        copy.deepcopy(ds) for ds in ct_series(2, study_uid=STUDY, series_uid=SERIES_B, patient_id=PATIENT)
    ]
    for i, ds in enumerate(second):
        ds.SOPInstanceUID = derived_uid("deid-cli", "b", str(i))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SourceImageSequence = Sequence([reference(first[i])])
        ds.ReferencedImageSequence = Sequence([reference(first[0])])
    for i, ds in enumerate(first + second):
        ds.PatientName = NAME
        ds.FrameOfReferenceUID = FRAME
        ds.StudyDate = "20240105"
        ds.SeriesDate = "20240105" if i < 2 else "20240107"
        ds.StudyDescription = f"CT chest {NAME.replace('^', ' ')}"
        sub = folder / ("Doe_Jonathan" if i < 2 else "Doe_Jonathan_recon")
        sub.mkdir(parents=True, exist_ok=True)
        ds.save_as(sub / f"{PATIENT}_{i}.dcm", enforce_file_format=True)
    return first + second


def run_deid(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*radai_command(), "deid", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.slow
def test_folder_end_to_end(tmp_path: Path) -> None:
    originals = write_study(tmp_path / "in")
    key = tmp_path / "secret" / "deid.key"
    key.parent.mkdir()
    key.write_bytes(KEY_BYTES)
    options = ["--option", "retain-longitudinal-modified-dates", "--option", "clean-descriptors"]
    result = run_deid(
        str(tmp_path / "in"), str(tmp_path / "out"), "--key-file", str(key), *options, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "4 de-identified, 0 refused, 0 failed" in result.stdout

    outputs = sorted((tmp_path / "out").rglob("*"))
    files = [p for p in outputs if p.is_file()]
    assert len(files) == 4
    # Nothing of the input's names (patient name and ID) in the output tree; no mapping unless asked.
    for path in files:
        # <study>/<series>/<instance>.dcm, each a hash of the pseudonymised UID.
        assert re.fullmatch(
            r"[0-9a-f]{12}/[0-9a-f]{12}/[0-9a-f]{12}\.dcm", str(path.relative_to(tmp_path / "out"))
        )
    assert not any(p.suffix == ".csv" for p in files)

    pseudo = PseudonymKey(KEY_BYTES)
    by_uid = {ds.SOPInstanceUID: ds for ds in (dcmread(p) for p in files)}
    assert set(by_uid) == {pseudo.uid(ds.SOPInstanceUID) for ds in originals}
    # Referential integrity: one study, two series, one frame of reference, and every
    # reference resolves to an instance of the output.
    assert {ds.StudyInstanceUID for ds in by_uid.values()} == {pseudo.uid(STUDY)}
    assert {ds.SeriesInstanceUID for ds in by_uid.values()} == {pseudo.uid(SERIES_A), pseudo.uid(SERIES_B)}
    assert {ds.FrameOfReferenceUID for ds in by_uid.values()} == {pseudo.uid(FRAME)}
    derived = [ds for ds in by_uid.values() if "SourceImageSequence" in ds]
    assert len(derived) == 2
    for ds in derived:
        for seq in ("SourceImageSequence", "ReferencedImageSequence"):
            target = ds[seq].value[0].ReferencedSOPInstanceUID
            assert target in by_uid and by_uid[target].SeriesInstanceUID == pseudo.uid(SERIES_A)
    # One pseudonymous patient, dates moved together (the 2-day interval kept), text cleaned.
    assert {ds.PatientID for ds in by_uid.values()} == {pseudo.identifier("PatientID", PATIENT)}
    assert all(not ds.PatientName for ds in by_uid.values())
    shifts = {
        (dt.date.fromisoformat(ds.SeriesDate) - dt.date.fromisoformat(ds.StudyDate)).days
        for ds in by_uid.values()
    }
    assert shifts == {0, 2}
    assert all(ds.StudyDate != "20240105" for ds in by_uid.values())
    assert {ds.StudyDescription for ds in by_uid.values()} == {"CT chest"}
    for path in files:
        data = path.read_bytes()
        for text in (b"Doe", b"Jonathan", PATIENT.encode(), STUDY.encode(), SERIES_A.encode(), b"20240105"):
            assert text not in data, (path.name, text)

    # The same input and key give byte-identical files on a second run; another key does not.
    again = run_deid(
        str(tmp_path / "in"), str(tmp_path / "again"), "--key-file", str(key), *options, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert {
        p.relative_to(tmp_path / "again"): p.read_bytes() for p in (tmp_path / "again").rglob("*.dcm")
    } == {p.relative_to(tmp_path / "out"): p.read_bytes() for p in files}
    other_key = tmp_path / "secret" / "other.key"
    other_key.write_bytes(b"x" * 32)
    other = run_deid(
        str(tmp_path / "in"), str(tmp_path / "other"), "--key-file", str(other_key), cwd=tmp_path
    )
    assert other.returncode == 0, other.stderr
    other_uids = {dcmread(p).StudyInstanceUID for p in (tmp_path / "other").rglob("*.dcm")}
    assert other_uids and other_uids.isdisjoint({pseudo.uid(STUDY)})


def test_mapping_only_when_asked_and_never_in_the_output(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    dcmread(pydicom_data("693_UNCR.dcm")).save_as(folder / "a.dcm", enforce_file_format=True)
    key = tmp_path / "k"
    key.write_bytes(KEY_BYTES)
    inside = run_deid(
        str(folder),
        str(tmp_path / "out"),
        "--key-file",
        str(key),
        "--mapping",
        str(tmp_path / "out" / "map.csv"),
        cwd=tmp_path,
    )
    assert inside.returncode != 0 and "outside the output folder" in inside.stderr
    ok = run_deid(
        str(folder),
        str(tmp_path / "out"),
        "--key-file",
        str(key),
        "--mapping",
        str(tmp_path / "map.csv"),
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    lines = (tmp_path / "map.csv").read_text().splitlines()
    assert lines[0] == "input,output" and lines[1].startswith(str(folder / "a.dcm"))


def test_key_rules(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    dcmread(pydicom_data("693_UNCR.dcm")).save_as(folder / "a.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / "k").write_bytes(KEY_BYTES)
    beside = run_deid(str(folder), str(out), "--key-file", str(out / "k"), cwd=tmp_path)
    assert beside.returncode != 0 and "must not be inside the output folder" in beside.stderr
    none = run_deid(str(folder), str(tmp_path / "o2"), cwd=tmp_path)
    assert none.returncode != 0 and "no de-identification key" in none.stderr
    # The key may come from the configuration (here the environment) instead.
    from_env = run_deid(
        str(folder), str(tmp_path / "o3"), cwd=tmp_path, env={"RADAI_DEID__KEY": KEY_BYTES.decode()}
    )
    assert from_env.returncode == 0, from_env.stderr
    written = next((tmp_path / "o3").rglob("*.dcm"))
    assert dcmread(written).PatientID == PseudonymKey(KEY_BYTES).identifier(
        "PatientID", dcmread(folder / "a.dcm").PatientID
    )
    bad = run_deid(
        str(folder), str(tmp_path / "o4"), "--key-file", str(out / "k"), "--option", "keep-all", cwd=tmp_path
    )
    assert bad.returncode != 0 and "unknown de-identification option 'keep-all'" in bad.stderr


def test_burned_in_files_are_refused_and_named(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    dcmread(pydicom_data("US1_UNCR.dcm")).save_as(folder / "us.dcm", enforce_file_format=True)
    key = tmp_path / "k"
    key.write_bytes(KEY_BYTES)
    refused = run_deid(str(folder), str(tmp_path / "out"), "--key-file", str(key), cwd=tmp_path)
    assert refused.returncode == 0
    assert "0 de-identified, 1 refused" in refused.stdout
    assert "us.dcm: Ultrasound Image Storage objects commonly carry burned-in text" in refused.stderr
    cleaned = run_deid(
        str(folder),
        str(tmp_path / "out2"),
        "--key-file",
        str(key),
        "--clean-pixels",
        "0,0,100,40",
        cwd=tmp_path,
    )
    assert cleaned.returncode == 0 and "1 de-identified" in cleaned.stdout
    ds = dcmread(next((tmp_path / "out2").rglob("*.dcm")))
    assert ds.BurnedInAnnotation == "NO"
    assert (ds.pixel_array[:40, :100] == 0).all()
