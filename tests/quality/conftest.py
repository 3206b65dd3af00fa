"""Fixtures of the validation run tests: a radai with fast task retries, a small real model
package, and studies of real images in a frozen dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from radai.app import Radai
from radai.datasets.service import CodeRef, add_studies, create_dataset, freeze, set_label, study_pks_for_uids
from radai.models.manifest import load_manifest
from radai.models.preprocess import prepare_input
from tests.auth.conftest import app, auth_radai, client, user_headers
from tests.fixtures.data import pydicom_data, pydicom_test_file
from tests.inference.conftest import make_radai
from tests.inference.packages import FINDING, SMALL_IMAGES, store_image, write_onnx_package

__all__ = ["app", "auth_radai", "client", "user_headers"]

BRIGHT = CodeRef(FINDING["scheme"], FINDING["value"], FINDING["meaning"])
CARD = {
    "purpose": "validation run tests",
    "source": "pydicom test files and pydicom-data",
    "inclusion_criteria": "five studies, one of them an ultrasound",
    "label_method": "made up for the tests",
}
#: (salt, image, sex, age, label): four images the test model reads, and an ultrasound it refuses.
STUDIES = (
    ("val-ct", "CT_small.dcm", "F", "034Y", None),
    ("val-mr", "MR_small.dcm", "M", "067Y", None),
    ("val-ct512", "693_UNCI.dcm", "F", "052Y", None),
    ("val-mr-siemens", "MR-SIEMENS-DICOM-WithOverlays.dcm", "M", "008Y", None),
    ("val-us", "US1_UNCI.dcm", "F", "029Y", "present"),
)


@pytest.fixture
def val_radai(tmp_path: Path, db_url: str) -> Iterator[Radai]:
    """A migrated radai (not serving) whose executors poll and retry fast."""
    radai = make_radai(tmp_path, db_url)
    try:
        yield radai
    finally:
        radai.stop()


def onnx_package(tmp_path: Path, model_id: str = "onnx-val", **kw: Any) -> Path:
    """The tests' brightness model (score = mean of the 32×32 input), written to ``tmp_path``."""
    return write_onnx_package(tmp_path / model_id, model_id, threshold=0.3, batch_timeout_ms=100, **kw)


def expected_score(package: Path, image: str) -> float:
    """What the brightness model gives an image: the mean of its prepared input."""
    path = pydicom_test_file(image) if image in SMALL_IMAGES else pydicom_data(image)
    return float(prepare_input(dcmread(path), load_manifest(package).input).mean())


def labelled_dataset(
    radai: Radai, package: Path, name: str = "val-set"
) -> dict[str, tuple[str, float | None]]:
    """Store the five studies, label them and freeze the dataset.

    The four readable images are labelled by the rank of their expected score (2nd and 4th
    present), so that the AUC is neither 0 nor 1. Returns key → (label, expected score).
    """
    uids = []
    for i, (salt, image, sex, age, _) in enumerate(STUDIES):
        uid, _series = store_image(
            radai, image, salt, changes={"PatientSex": sex, "PatientAge": age, "PatientID": f"VAL-{i}"}
        )
        uids.append(uid)
    scores = {salt: expected_score(package, image) for salt, image, *_ in STUDIES[:4]}
    ranked = sorted(scores, key=scores.__getitem__)
    labels = {salt: ("present" if ranked.index(salt) in (1, 3) else "absent") for salt in scores}
    labels["val-us"] = "present"
    out: dict[str, tuple[str, float | None]] = {}
    with radai.db.transaction() as s:
        version = create_dataset(s, name=name, actor="tests", card=CARD)
        added = add_studies(s, version=version, study_pks=study_pks_for_uids(s, uids))
        for key, (salt, *_rest) in zip(added.keys, STUDIES, strict=True):
            set_label(
                s,
                version=version,
                study=key,
                code=BRIGHT,
                value=labels[salt],
                method="made up",
                established_by="tests",
                actor="tests",
            )
            out[key] = (labels[salt], scores.get(salt))
        freeze(s, version=version, storage=radai.storage, actor="tests")
    return out
