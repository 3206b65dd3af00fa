"""A model package with ``runtime.kind: python``, copied into test packages as ``testmodel.py``.

It is a real model behind the LoadedModel contract: real selection on the index, the
real pixel pipeline (radai.models.preprocess), a deterministic score (the mean
brightness of each prepared image). ``behaviour.json`` beside it makes it slow or
failing, and every forward pass is appended to ``calls.jsonl`` (rows, start, end), so
tests can see batch sizes and overlapping calls.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from radai.models.api import DefectCategory, FindingScore, InstanceRef, ModelDefect
from radai.models.manifest import Manifest
from radai.models.preprocess import prepare_input

_lock = threading.Lock()


class BrightnessModel:
    def __init__(self, manifest: Manifest, package_dir: Path) -> None:
        self.manifest = manifest
        self.package_dir = package_dir

    @property
    def model_id(self) -> str:
        return self.manifest.id

    @property
    def version(self) -> str:
        return self.manifest.version

    def behaviour(self) -> dict[str, Any]:
        path = self.package_dir / "behaviour.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def select(self, instances: list[InstanceRef]) -> list[InstanceRef]:
        if self.behaviour().get("unsuited"):
            raise ModelDefect(DefectCategory.INPUT_NOT_SUITED, "the test model refuses every study")
        images = [i for i in instances if i.rows and i.modality.upper() in self.manifest.scope.modalities]
        if not images:
            raise ModelDefect(DefectCategory.INPUT_NOT_SUITED, "no image of a modality the model accepts")
        return images[: self.manifest.input.max_images]

    def prepare(self, ds: Any) -> np.ndarray:
        return prepare_input(ds, self.manifest.input)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        b = self.behaviour()
        start = time.time()
        time.sleep(float(b.get("sleep_seconds", 0)))
        end = time.time()
        with _lock, (self.package_dir / "calls.jsonl").open("a") as fh:
            fh.write(json.dumps({"rows": int(batch.shape[0]), "start": start, "end": end}) + "\n")
        fail = b.get("fail")
        if fail == "model_error":
            raise ModelDefect(DefectCategory.MODEL_ERROR, "the test model fails on purpose")
        if fail == "service_unavailable":
            raise ModelDefect(DefectCategory.SERVICE_UNAVAILABLE, "the test model is unavailable",
                              retryable=True)
        if fail == "exception":
            raise RuntimeError("unexpected failure inside the model")
        m = batch.reshape(batch.shape[0], -1).mean(axis=1).clip(0, 1)
        return np.stack([1.0 - m, m], axis=1).astype(np.float32)

    def score(self, outputs: np.ndarray) -> list[FindingScore]:
        result = []
        for f in self.manifest.outputs.findings:
            column = outputs[:, f.index]
            p = float(column.max())
            result.append(FindingScore(code=f.code.to_code(), label=f.label, probability=p,
                                       threshold=f.threshold, positive=p >= f.threshold,
                                       urgency=f.urgency, input_index=int(np.argmax(column))))
        return result

    def explain(self, inputs: np.ndarray, finding: FindingScore) -> np.ndarray:
        image = inputs[finding.input_index]
        plane = image[..., 0] if image.ndim == 3 else image
        span = float(plane.max() - plane.min()) or 1.0
        return (plane - plane.min()) / span


def load(*, manifest: Manifest, package_dir: Path) -> BrightnessModel:
    return BrightnessModel(manifest, package_dir)
