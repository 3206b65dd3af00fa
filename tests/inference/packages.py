"""Small real model packages for tests, and helpers to register them and store studies.

- :func:`write_onnx_package`: a tiny ONNX graph (mean brightness → two probabilities)
  built with the ``onnx`` helper API, run by radai's own ONNX Runtime path.
- :func:`write_python_package`: the ``python`` runtime with tests/inference/python_model.py,
  which can be made slow or failing through ``behaviour.json``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from pydicom import dcmread

from radai.app import Radai
from radai.models.manifest import LifecycleState
from radai.models.registry import ModelRecord, ModelRegistry
from radai.uids import derived_uid
from tests.fixtures.data import pydicom_data, pydicom_test_file, to_bytes

FINDING = {"value": "BRIGHT", "scheme": "99RADAITEST", "meaning": "Bright image"}


def manifest(model_id: str, *, version: str = "1.0", runtime: dict[str, Any],
             modalities: list[str] | None = None, size: int = 32, max_batch_size: int = 8,
             batch_timeout_ms: int = 300, concurrency: int = 1, timeout_seconds: float = 60,
             max_retries: int = 2, threshold: float = 0.3, max_images: int = 4) -> dict[str, Any]:
    return {
        "id": model_id, "version": version, "name": f"Test model {model_id}", "vendor": "radai tests",
        "intended_use": "Tests of radai's task execution only.", "licence": "Apache-2.0",
        "scope": {"modalities": modalities or ["CR", "DX", "MR", "CT"], "missing_body_part": "accept"},
        "input": {"size": [size, size], "channels": 1, "layout": "NHWC",
                  "normalisation": {"kind": "scale", "divisor": 255}, "windowing": "minmax",
                  "max_images": max_images},
        "outputs": {"kind": "softmax", "classes": 2, "other_labels": {0: "dark"},
                    "findings": [{"code": FINDING, "label": "bright", "index": 1,
                                  "threshold": threshold, "urgency": "urgent"}]},
        "runtime": runtime,
        "resources": {"device": "cpu", "max_batch_size": max_batch_size,
                      "batch_timeout_ms": batch_timeout_ms, "concurrency": concurrency,
                      "timeout_seconds": timeout_seconds, "max_retries": max_retries},
        "lifecycle": {"state": "draft"},
    }


def _write(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def write_onnx_package(folder: Path, model_id: str = "test-onnx", **kw: Any) -> Path:
    """An ONNX package: output = [1 - mean, mean] of the 32×32×1 input."""
    import onnx
    from onnx import TensorProto, helper

    size = kw.get("size", 32)
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["one", "mean"], ["rest"]),
        helper.make_node("Concat", ["rest", "mean"], ["output"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "brightness",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", size, size, 1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 2])],
        initializer=[helper.make_tensor("one", TensorProto.FLOAT, [1, 1], [1.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    runtime = {"kind": "onnx", "file": "model.onnx", "input_name": "input", "output_name": "output",
               "explain": "occlusion", "occlusion_grid": 4}
    return _write(folder, manifest(model_id, runtime=runtime, **kw))


def write_python_package(folder: Path, model_id: str = "test-python",
                         behaviour: dict[str, Any] | None = None, **kw: Any) -> Path:
    """A python-runtime package (tests/inference/python_model.py) with ``behaviour.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("python_model.py"), folder / "testmodel.py")
    set_behaviour(folder, behaviour or {})
    return _write(folder, manifest(model_id, runtime={"kind": "python", "entry_point": "testmodel:load"},
                                   **kw))


def set_behaviour(folder: Path, behaviour: dict[str, Any]) -> None:
    (folder / "behaviour.json").write_text(json.dumps(behaviour))


def calls(package: Path) -> list[dict[str, Any]]:
    """Forward passes a python test model made (rows, start, end)."""
    path = package / "calls.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def install_live(registry: ModelRegistry, folder: Path) -> ModelRecord:
    """Import a package and take it through the lifecycle to live.

    The registry copies the package into the data folder: the model runs from
    ``Path(record.source)`` (where a python test model reads its behaviour and logs calls).
    """
    record = registry.import_package(folder)
    for state in (LifecycleState.VALIDATED, LifecycleState.APPROVED, LifecycleState.LIVE):
        record = registry.set_state(record.model_id, record.version, state, reason="test",
                                    actor="tests")
    return record


#: Small real images: (file, where it comes from).
SMALL_IMAGES = {
    "CT_small.dcm": "pydicom",  # CT 128×128, 16-bit
    "MR_small.dcm": "pydicom",  # MR 64×64, 16-bit
}


def store_image(radai: Radai, name: str, salt: str, *, study_salt: str | None = None,
                changes: dict[str, Any] | None = None) -> tuple[str, str]:
    """Store a real image under new UIDs; returns (study UID, series UID)."""
    path = pydicom_test_file(name) if name in SMALL_IMAGES else pydicom_data(name)
    ds = dcmread(path)
    ds.StudyInstanceUID = derived_uid("inference-test", study_salt or salt, "study")
    ds.SeriesInstanceUID = derived_uid("inference-test", salt, "series")
    ds.SOPInstanceUID = derived_uid("inference-test", salt, "instance")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for key, value in (changes or {}).items():
        setattr(ds, key, value)
    out = radai.archive.store(to_bytes(ds), source="import")
    return out.study_instance_uid, out.series_instance_uid


def live_package(registry: ModelRegistry, folder: Path) -> Path:
    """:func:`install_live`, returning the folder the model runs from."""
    return Path(install_live(registry, folder).source)
