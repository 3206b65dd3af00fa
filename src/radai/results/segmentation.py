"""Which of a model's outputs are segmentations: ``segmentation.yaml`` in the model package.

The model manifest (``model.yaml``) describes findings with a probability each; it has no
output kind for masks. A package whose model segments puts a ``segmentation.yaml`` beside
its ``model.yaml``, naming the findings whose explanation map (what the model returns
from ``LoadedModel.explain``, stored by the executor as the finding's heatmap) is a
per-pixel probability of belonging to the finding::

    segments:
      - finding: {value: "36118008", scheme: SCT, meaning: "Pneumothorax"}
        # Segmented Property Category, PS3.16 CID 7150 (default: morphologically abnormal structure)
        category: {value: "49755003", scheme: SCT, meaning: "Morphologically abnormal structure"}
        # pixels at or above this probability are inside the segment (default 0.5)
        threshold: 0.5

For such findings radai writes a DICOM Segmentation (radai.results.seg) from the map
thresholded at ``threshold``, in addition to the SR and the marked-up image. A finding
is segmented only when it is positive (the executor makes maps for positive findings).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from radai.models.api import Code

FILE_NAME = "segmentation.yaml"


class SegmentationError(ValueError):
    """An invalid ``segmentation.yaml``; the message names the file and the field."""


class _CodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str = Field(min_length=1, max_length=64)
    scheme: str = Field(min_length=1, max_length=16)
    meaning: str = Field(min_length=1, max_length=64)

    def to_code(self) -> Code:
        return Code(self.value, self.scheme, self.meaning)


class SegmentSpec(BaseModel):
    """One finding whose map is a segmentation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    finding: _CodeSpec
    category: _CodeSpec = _CodeSpec(value="49755003", scheme="SCT",
                                    meaning="Morphologically abnormal structure")
    threshold: float = Field(default=0.5, gt=0.0, le=1.0)


class SegmentationSpec(BaseModel):
    """A package's ``segmentation.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segments: list[SegmentSpec] = Field(min_length=1)

    def for_finding(self, code: Code) -> SegmentSpec | None:
        """The segment spec of the finding coded ``code``, if it is a segmentation."""
        return next((s for s in self.segments
                     if (s.finding.value, s.finding.scheme) == (code.value, code.scheme)), None)


def load_segmentation_spec(package_dir: Path) -> SegmentationSpec | None:
    """The package's segmentation spec, or None when it has no ``segmentation.yaml``."""
    path = package_dir / FILE_NAME
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SegmentationError(f"{FILE_NAME}: cannot be read ({type(exc).__name__})") from None
    try:
        return SegmentationSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "segmentation"
        raise SegmentationError(f"{FILE_NAME}: {where}: {err['msg']}") from None
