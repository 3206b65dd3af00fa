"""The test model: finds the brightest part of an image (see model.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from radai.imaging import display_frame
from radai.models.api import DefectCategory, FindingScore, InstanceRef, ModelDefect

#: Display values above this fraction of white are "bright".
BRIGHT = 0.75


class BrightRegionModel:
    """Scores the share of bright pixels; explains with the bright mask or its blur."""

    def __init__(self, manifest: Any) -> None:
        self.manifest = manifest

    @property
    def model_id(self) -> str:
        return str(self.manifest.id)

    @property
    def version(self) -> str:
        return str(self.manifest.version)

    def select(self, instances: list[InstanceRef]) -> list[InstanceRef]:
        chosen = [i for i in instances if i.modality in self.manifest.scope.modalities]
        if not chosen:
            raise ModelDefect(DefectCategory.INPUT_NOT_SUITED, "no image of a supported modality")
        return chosen[: self.manifest.input.max_images]

    def prepare(self, ds: Dataset) -> np.ndarray:
        rows, cols = self.manifest.input.size
        image = Image.fromarray(display_frame(ds)).convert("L")
        image = image.resize((cols, rows), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.float32)[..., None] / 255.0

    def infer(self, batch: np.ndarray) -> np.ndarray:
        bright = (batch[..., 0] > BRIGHT).reshape(len(batch), -1).mean(axis=1)
        return np.stack([bright, np.sqrt(bright)], axis=1)

    def score(self, outputs: np.ndarray) -> list[FindingScore]:
        out = []
        for spec in self.manifest.outputs.findings:
            column = outputs[:, spec.index]
            best = int(np.argmax(column))
            p = float(column[best])
            out.append(FindingScore(spec.code.to_code(), spec.label, p, spec.threshold,
                                    p >= spec.threshold, spec.urgency, input_index=best))
        return out

    def explain(self, inputs: np.ndarray, finding: FindingScore) -> np.ndarray:
        image = inputs[finding.input_index][..., 0]
        mask = (image > BRIGHT).astype(np.float32)
        if finding.code.value == "52988006":
            return mask
        blurred = Image.fromarray((mask * 255).astype(np.uint8)).resize((16, 16), Image.Resampling.BOX)
        smooth = blurred.resize(mask.shape[::-1], Image.Resampling.BILINEAR)
        return np.asarray(smooth, dtype=np.float32) / 255.0


def load(*, manifest: Any, package_dir: Path) -> BrightRegionModel:
    """Entry point named in model.yaml."""
    return BrightRegionModel(manifest)
