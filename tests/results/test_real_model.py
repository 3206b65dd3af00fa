"""The built-in pneumonia model on a real chest radiograph: results that pass dciodvfy.

pydicom-data's RG1_UNCI.dcm (CR, CHEST, PA) goes through the default routing rule to
``pneumonia-peds`` (Keras Xception exported to ONNX at first use; ``TEST_MODELS_CACHE``
names a cache folder to reuse across runs). Its SR and marked-up image are checked as a
PACS would see them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import pytest
from pydicom import dcmread

from radai.app import Radai
from radai.config import load_settings
from tests.fixtures.data import pydicom_data
from tests.fixtures.peers import free_port
from tests.fixtures.waiting import wait_for
from tests.results.conftest import dciodvfy
from tests.results.test_pipeline import FAST, ready, results_of, store


@pytest.fixture
def pneumonia_radai(tmp_path: Path, sqlite_url: str, models_cache: Path) -> Iterator[Radai]:
    overrides = {k: v for k, v in FAST.items() if k not in ("models", "routing")}
    settings = load_settings(data_dir=tmp_path / "data", database_url=sqlite_url, http_port=free_port(),
                             dicom_port=free_port(), models={"cache_dir": str(models_cache)},
                             **overrides)
    radai = Radai(settings)
    radai.start()
    try:
        yield radai
    finally:
        radai.stop()


@pytest.mark.slow
def test_pneumonia_model_results_on_a_real_radiograph(pneumonia_radai: Radai, tmp_path: Path) -> None:
    radai = pneumonia_radai
    study = store(radai, "RG1_UNCI.dcm", "real-model")
    wait_for(ready(radai, study), "pneumonia results", timeout=900)
    (result,) = results_of(radai, study).results
    assert result.model_id == "pneumonia-peds" and result.status == "findings"
    (finding,) = result.findings
    assert finding.code.value == "233604007" and 0.0 <= finding.probability <= 1.0
    assert result.pathology_flag == finding.positive
    assert result.confidence_level == round(100 * finding.probability)

    objects = {o.kind: o for o in result.objects}
    assert set(objects) == {"sr", "sc"}  # the model does not segment
    source_size = pydicom_data("RG1_UNCI.dcm").stat().st_size
    for kind, obj in objects.items():
        data = radai.archive.read(obj.sop_instance_uid)
        ds = dcmread(io.BytesIO(data))
        verdict = dciodvfy(ds, tmp_path)
        assert verdict.errors == [], verdict.output
        if kind == "sc":
            assert len(data) <= source_size
            assert ds.BurnedInAnnotation == "YES" and ds.Rows == 1955 and ds.Columns == 1841
    sr = hd.sr.srread(io.BytesIO(radai.archive.read(objects["sr"].sop_instance_uid)))
    equipment = sr.ContributingEquipmentSequence[-1]
    assert equipment.SoftwareVersions == "0.3.0"
    assert equipment.PurposeOfReferenceCodeSequence[0].CodeMeaning == "Processing Algorithm"
