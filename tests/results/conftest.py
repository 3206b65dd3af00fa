"""Shared inputs of the result tests: real source images, a model identity, dciodvfy."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from radai.models.api import Code, FindingScore
from radai.results.common import Algorithm, to_part10
from radai.results.inputs import SourceImage
from tests.fixtures.data import pydicom_data, pydicom_test_file
from tests.fixtures.peers import require_program

#: The test model package (a real, small model; see mask_model/model.yaml).
MASK_MODEL_DIR = Path(__file__).parent / "mask_model"

PNEUMONIA = Code("233604007", "SCT", "Pneumonia")
EFFUSION = Code("60046008", "SCT", "Pleural effusion")


def source(name: str) -> SourceImage:
    """A real image from pydicom-data (or pydicom's test files) with its file size."""
    try:
        path = pydicom_data(name)
    except FileNotFoundError:
        path = pydicom_test_file(name)
    return SourceImage(dcmread(path), path.stat().st_size)


@pytest.fixture
def chest() -> SourceImage:
    """pydicom-data's CR chest radiograph (1955 × 1841, 16-bit, MONOCHROME1, 7.2 MB)."""
    return source("RG1_UNCI.dcm")


@pytest.fixture
def algorithm() -> Algorithm:
    return Algorithm(model_id="pneumonia-peds", version="0.3.0",
                     name="Paediatric pneumonia chest X-ray classifier (Xception)",
                     vendor="pneumonia-model-package (PyPI), packaged by radai")


def findings(p_pneumonia: float = 0.87, p_effusion: float = 0.12) -> list[FindingScore]:
    """One positive and one negative finding at operating point 0.5."""
    return [FindingScore(PNEUMONIA, "pneumonia", p_pneumonia, 0.5, p_pneumonia >= 0.5, "urgent"),
            FindingScore(EFFUSION, "pleural effusion", p_effusion, 0.5, p_effusion >= 0.5, "routine")]


@dataclass(frozen=True)
class Verdict:
    """What dciodvfy printed about one object."""

    errors: list[str]
    warnings: list[str]
    output: str


def dciodvfy(ds: Dataset, folder: Path) -> Verdict:
    """Run dicom3tools' dciodvfy on ``ds`` written as a PS3.10 file."""
    program = require_program("dciodvfy")
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    path.write_bytes(to_part10(ds))
    proc = subprocess.run([program, str(path)], capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    lines = [line.strip() for line in output.splitlines()]
    return Verdict([line for line in lines if line.startswith("Error")],
                   [line for line in lines if line.startswith("Warning")], output)


def copy_mask_model(data_dir: Path) -> Path:
    """Put the test model package where the registry finds imported packages."""
    target = data_dir / "models" / "mask-test" / "1.0"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(MASK_MODEL_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
