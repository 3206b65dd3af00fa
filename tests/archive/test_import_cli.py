"""`radai import PATH…`: recursive import with a summary of stored, duplicates and rejected."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pydicom import dcmread

from tests.fixtures.data import pydicom_data, to_bytes
from tests.fixtures.peers import radai_command


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*radai_command(), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_import_folder_summary_and_reasons(tmp_path: Path) -> None:
    src = tmp_path / "incoming" / "nested"
    src.mkdir(parents=True)
    for name in ("RG1_UNCI.dcm", "MR2_UNCR.dcm", "693_J2KR.dcm"):
        shutil.copy(pydicom_data(name), src / name)
    shutil.copy(pydicom_data("MR2_UNCR.dcm"), src / "copy-of-mr.dcm")  # same instance again
    (src / "notes.txt").write_text("not an image")
    ds = dcmread(pydicom_data("RG1_UNCI.dcm"))
    ds.PatientName = "Hidden^Person"
    del ds.SOPInstanceUID
    (src / "broken.dcm").write_bytes(to_bytes(ds))
    data_dir = tmp_path / "data"

    result = _run("import", "--data-dir", str(data_dir), str(tmp_path / "incoming"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # some files were refused
    out = result.stdout
    assert "stored: 3" in out and "duplicates: 1" in out and "rejected: 2" in out
    assert "notes.txt: not a DICOM file" in out
    assert "broken.dcm: SOPInstanceUID (0008,0018) is missing" in out
    assert "Hidden" not in result.stdout + result.stderr

    again = _run("import", "--data-dir", str(data_dir), str(src / "RG1_UNCI.dcm"), cwd=tmp_path)
    assert again.returncode == 0
    assert "stored: 0" in again.stdout and "duplicates: 1" in again.stdout


def test_import_of_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = _run("import", "--data-dir", str(tmp_path / "d"), str(tmp_path / "nope"), cwd=tmp_path)
    assert result.returncode == 2
    assert "does not exist" in result.stderr
