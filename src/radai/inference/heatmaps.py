"""Heatmap files: a float array (``.npy``) and an 8-bit grayscale picture (``.png``);
and the heatmap drawn over its source image, for people to look at.

Paths come from a hash of the task and the finding's code only, never from tag text:
``heatmaps/ab/cd/abcd….npy`` below the data folder. Writing is atomic (temporary file,
then rename) and idempotent: a task that runs again writes the same path.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from radai.imaging import display_frame, overlay

HEATMAP_FOLDER = "heatmaps"


def heatmap_relative_path(*, task_key: str, code_scheme: str, code_value: str) -> str:
    """The ``.npy`` path of a finding's heatmap, relative to the data folder."""
    digest = hashlib.sha256(f"{task_key}\\{code_scheme}\\{code_value}".encode()).hexdigest()
    return f"{HEATMAP_FOLDER}/{digest[:2]}/{digest[2:4]}/{digest}.npy"


def png_path(npy_path: Path) -> Path:
    """The picture beside a heatmap array."""
    return npy_path.with_suffix(".png")


def save_heatmap(data_dir: Path, relative_path: str, heatmap: np.ndarray) -> None:
    """Write a 2D heatmap in 0..1 as ``.npy`` (float32) and ``.png`` (0..255)."""
    arr = np.asarray(heatmap, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"a heatmap must be 2D, not of shape {arr.shape}")
    arr = np.nan_to_num(np.clip(arr, 0.0, 1.0))
    target = data_dir / relative_path
    target.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    _atomic_write(target, buf.getvalue())
    picture = io.BytesIO()
    Image.fromarray((arr * 255.0).round().astype(np.uint8), mode="L").save(picture, format="PNG")
    _atomic_write(png_path(target), picture.getvalue())


def load_heatmap(data_dir: Path, relative_path: str) -> np.ndarray:
    """A stored heatmap array."""
    return np.asarray(np.load(data_dir / relative_path, allow_pickle=False))


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def overlay_png(ds: Dataset, *, frame: int, heat: np.ndarray, max_side: int, opacity: float) -> bytes:
    """The source image as shown (radai.imaging.display_frame), scaled to fit ``max_side``
    with its aspect kept, the heatmap blended in as in the result secondary captures
    (radai.imaging.overlay), as PNG. Raises radai.imaging.PixelError for unreadable pixels."""
    picture = Image.fromarray(display_frame(ds, frame))
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    Image.fromarray(overlay(np.asarray(picture), heat, opacity=opacity), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()
