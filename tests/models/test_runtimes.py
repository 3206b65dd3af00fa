"""Runtimes, selection, scores and heatmaps of the built-in models on real images."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from radai.app import Radai
from radai.models.api import DefectCategory, InstanceRef, LoadedModel, ModelDefect
from radai.models.loader import ManifestModel
from tests.fixtures.data import pneumonia_images_dir, pydicom_data
from tests.models.conftest import model_settings
from tests.models.helpers import write_package

BRAIN = ("brain-tumor-mri", "0.1.1")
PNEUMONIA = ("pneumonia-peds", "0.3.0")
MR_FILES = ("MR2_UNCR.dcm", "MR_small.dcm")


@pytest.fixture
def radai(tmp_path: Path, models_cache: Path) -> Radai:
    instance = Radai(model_settings(tmp_path, models_cache))
    instance.db.migrate()
    instance.models.sync()
    return instance


def _mr_inputs(model: LoadedModel) -> np.ndarray:
    from tests.fixtures.data import pydicom_test_file

    return np.stack([model.prepare(dcmread(pydicom_data(MR_FILES[0]))),
                     model.prepare(dcmread(pydicom_test_file(MR_FILES[1])))])


def _ref(**fields: object) -> InstanceRef:
    base: dict[str, object] = dict(sop_instance_uid="1.2.3", sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                                   series_instance_uid="1.2.4", modality="MR", body_part_examined="",
                                   view_position="", series_description="", rows=256, columns=256,
                                   number_of_frames=None)
    base.update(fields)
    return InstanceRef(**base)  # type: ignore[arg-type]


def test_brain_model_on_real_mr_gives_a_softmax_and_torch_agrees(radai: Radai) -> None:
    onnx_model = radai.models.load(*BRAIN, runtime="onnx")
    torch_model = radai.models.load(*BRAIN, runtime="torch")
    inputs = _mr_inputs(onnx_model)
    out = onnx_model.infer(inputs)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    assert (out >= 0).all() and (out <= 1).all()
    np.testing.assert_allclose(torch_model.infer(inputs), out, atol=1e-4)
    scores = onnx_model.score(out)
    assert [s.label for s in scores] == ["glioma", "meningioma", "pituitary tumour"]
    for s in scores:
        column = {"glioma": 0, "meningioma": 1, "pituitary tumour": 3}[s.label]
        assert s.probability == pytest.approx(float(out[:, column].max()))
        assert s.input_index == int(out[:, column].argmax())
        assert s.positive == (s.probability >= 0.5)


def test_pneumonia_onnx_and_torch_agree(radai: Radai) -> None:
    from PIL import Image

    onnx_model = radai.models.load(*PNEUMONIA, runtime="onnx")
    torch_model = radai.models.load(*PNEUMONIA, runtime="torch")
    images = sorted(pneumonia_images_dir().glob("*.jpeg"))[:4]
    batch = np.stack([np.asarray(Image.open(p).convert("RGB").resize((150, 150), Image.Resampling.NEAREST),
                                 dtype=np.float32) / 127.5 - 1 for p in images])
    a, b = onnx_model.infer(batch), torch_model.infer(batch)
    assert a.shape == (4, 2)
    np.testing.assert_allclose(b, a, atol=1e-4)


def test_heatmaps_gradcam_on_torch_and_occlusion_on_onnx(radai: Radai) -> None:
    torch_model = radai.models.load(*BRAIN, runtime="torch")
    inputs = _mr_inputs(torch_model)
    finding = max(torch_model.score(torch_model.infer(inputs)), key=lambda s: s.probability)
    cam = torch_model.explain(inputs, finding)
    assert cam.shape == (240, 240) and cam.dtype == np.float32
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0) and cam.std() > 0.01
    pneumonia = radai.models.load(*PNEUMONIA, runtime="onnx")
    ds_inputs = np.stack([pneumonia.prepare(dcmread(pydicom_data("RG1_UNCI.dcm")))])
    p_finding = pneumonia.score(pneumonia.infer(ds_inputs))[0]
    heat = pneumonia.explain(ds_inputs, p_finding)
    assert heat.shape == (150, 150) and heat.min() >= 0 and heat.max() <= 1.0
    assert heat.max() == pytest.approx(1.0) or not heat.any()


def test_selection_follows_the_scope(radai: Radai) -> None:
    brain = radai.models.load(*BRAIN, runtime="onnx")
    mr_no_body_part = _ref()
    assert brain.select([mr_no_body_part]) == [mr_no_body_part]
    with pytest.raises(ModelDefect) as err:
        brain.select([_ref(modality="CT"), _ref(modality="SR", rows=None, columns=None)])
    assert err.value.category is DefectCategory.INPUT_NOT_SUITED
    assert err.value.reason == "no image of the study has modality MR"
    with pytest.raises(ModelDefect, match="body part BRAIN/HEAD"):
        brain.select([_ref(body_part_examined="KNEE")])
    slices = [_ref(sop_instance_uid=f"1.2.3.{i}", body_part_examined="BRAIN") for i in range(100)]
    chosen = brain.select(slices)
    assert len(chosen) == 24 and chosen[0] is slices[0] and chosen[-1] is slices[-1]
    pneumonia = radai.models.load(*PNEUMONIA, runtime="onnx")
    cr = dict(modality="CR", body_part_examined="CHEST", sop_class_uid="1.2.840.10008.5.1.4.1.1.1")
    with pytest.raises(ModelDefect, match="view PA/AP"):
        pneumonia.select([_ref(view_position="LL", **cr)])
    with pytest.raises(ModelDefect, match="body part CHEST"):
        pneumonia.select([_ref(modality="DX")])
    assert len(pneumonia.select([_ref(view_position="", **cr), _ref(view_position="LL", **cr)])) == 1
    with pytest.raises(ModelDefect, match="modality CR is not one the model accepts"):
        brain.prepare(dcmread(pydicom_data("RG1_UNCI.dcm")))


def test_bad_batches_and_unloadable_packages(radai: Radai, tmp_path: Path) -> None:
    brain = radai.models.load(*BRAIN, runtime="onnx")
    with pytest.raises(ModelDefect) as err:
        brain.infer(np.zeros((1, 100, 100, 3), dtype=np.float32))
    assert err.value.category is DefectCategory.MODEL_ERROR
    pkg = write_package(tmp_path / "broken", {"id": "broken", "runtime.file": "model.onnx",
                                              "lifecycle.state": "draft"})
    (pkg / "model.onnx").write_bytes(b"not an onnx graph")
    radai.models.import_package(pkg)
    with pytest.raises(ModelDefect) as err:
        radai.models.load("broken", "0.1.1", runtime="onnx")
    assert err.value.category is DefectCategory.SERVICE_UNAVAILABLE and err.value.retryable


def test_concurrent_loads_build_one_model(radai: Radai) -> None:
    got: list[LoadedModel] = []
    threads = [threading.Thread(target=lambda: got.append(radai.models.load(*BRAIN, runtime="onnx")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(m is got[0] for m in got)
    assert isinstance(got[0], ManifestModel)


PYTHON_MODEL = '''
import numpy as np
from radai.models.loader import ManifestModel


class Brightness:
    """Scores an image by its mean brightness: a vendor model written in Python."""

    kind = "python"

    def run(self, batch):
        mean = batch.reshape(batch.shape[0], -1).mean(axis=1)
        return np.stack([1 - mean, 0 * mean, 0 * mean, mean], axis=1).astype(np.float32)


def build(*, manifest, package_dir):
    return ManifestModel(manifest, Brightness())
'''


def test_python_entry_point_runtime(radai: Radai, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "vendor", {
        "id": "acme-brightness", "runtime": {"kind": "python", "entry_point": "acme_model:build"},
        "lifecycle.state": "draft"})
    (pkg / "acme_model.py").write_text(PYTHON_MODEL)
    radai.models.import_package(pkg)
    model = radai.models.load("acme-brightness", "0.1.1")
    inputs = np.stack([model.prepare(dcmread(pydicom_data("MR2_UNCR.dcm")))])
    scores = model.score(model.infer(inputs))
    brightness = float(inputs.mean())
    assert scores[0].probability == pytest.approx(1 - brightness, abs=1e-5)
    assert scores[2].probability == pytest.approx(brightness, abs=1e-5)
