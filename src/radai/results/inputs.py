"""Typed inputs of the result writers (what a finished task hands over)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from radai.models.api import Code

#: (49755003, SCT, "Morphologically abnormal structure"), PS3.16 CID 7150.
ABNORMAL_STRUCTURE = Code("49755003", "SCT", "Morphologically abnormal structure")


@dataclass(frozen=True)
class SourceImage:
    """One input image of a task, as the writers need it."""

    #: The stored instance (with Pixel Data for the Secondary Capture writer).
    dataset: Dataset
    #: Size of the stored instance in bytes: a marked-up copy may not be larger.
    size_bytes: int
    #: 0-based frame the model read (multi-frame sources).
    frame: int = 0

    def __post_init__(self) -> None:
        if self.size_bytes < 0:
            raise ValueError("size_bytes must not be negative")
        if self.frame < 0:
            raise ValueError("frame must not be negative")


@dataclass(frozen=True)
class Heatmap:
    """Where the model looked for a finding: values 0..1 over one input's rows and columns.

    The array may have the model's input size; writers resize it to the source image.
    """

    input_index: int
    values: np.ndarray = field(repr=False)
    #: The finding it explains (for captions), if known.
    code: Code | None = None

    def __post_init__(self) -> None:
        if self.input_index < 0:
            raise ValueError("heatmap input_index must not be negative")
        if np.asarray(self.values).ndim != 2:
            raise ValueError("a heatmap must be a 2-D array")


@dataclass(frozen=True)
class SegmentMask:
    """A segmentation output of a model over one input image.

    ``mask`` is a 2-D array over the input's rows and columns (or the model's input
    size, resized with nearest-neighbour to the source); values above 0.5 are inside.
    ``category`` and ``code`` are PS3.16 CID 7150 (Segmentation Property Categories)
    and CID 7151-style property types, as the model's manifest codes them.
    """

    input_index: int
    code: Code
    label: str
    mask: np.ndarray = field(repr=False)
    category: Code = ABNORMAL_STRUCTURE

    def __post_init__(self) -> None:
        if self.input_index < 0:
            raise ValueError("segment input_index must not be negative")
        if np.asarray(self.mask).ndim != 2:
            raise ValueError("a segment mask must be a 2-D array")
        if not self.label.strip():
            raise ValueError("a segment needs a label (Segment Label (0062,0005))")
