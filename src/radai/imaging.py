"""Pixels from a DICOM dataset, as people see them and as models take them.

One pipeline for rendered WADO-RS, thumbnails, heatmap overlays and model inputs
(PS3.3 §C.11 and PS3.4 Annex N, the grayscale pipeline): stored values → Modality LUT
or Rescale Slope/Intercept → VOI LUT or window (explicit, from the dataset, or from the
pixel range) → MONOCHROME1 inverted → 8-bit. Colour images are converted to RGB.
Decoding of compressed transfer syntaxes goes through pydicom's pixel handlers
(pylibjpeg, openjpeg, pyjpegls, RLE).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut


class PixelError(ValueError):
    """Pixel data missing or undecodable (the message names no patient data)."""


@dataclass(frozen=True)
class Window:
    """A linear VOI window (PS3.3 §C.11.2.1.2): center and width in modality units."""

    center: float
    width: float
    function: str = "LINEAR"

    def __post_init__(self) -> None:
        if self.width < 1 and self.function.upper() != "LINEAR_EXACT":
            raise ValueError("window width must be at least 1")
        if self.function.upper() not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            raise ValueError("window function must be LINEAR, LINEAR_EXACT or SIGMOID")


#: Heatmap values below this fraction of the range leave the image untouched.
HEAT_FLOOR = 0.2


def number_of_frames(ds: Dataset) -> int:
    """Number of frames of an image (1 when Number of Frames is absent)."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def stored_frame(ds: Dataset, index: int = 0) -> np.ndarray:
    """Stored values of one frame (0-based), decoded; colour frames as RGB."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise PixelError("the instance has no Pixel Data (7FE0,0010)")
    frames = number_of_frames(ds)
    if not 0 <= index < frames:
        raise PixelError(f"frame {index + 1} does not exist (the instance has {frames})")
    try:
        arr = ds.pixel_array if frames == 1 else _one_frame(ds, index)
    except PixelError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders raise many types
        raise PixelError(f"pixel data cannot be decoded ({type(exc).__name__})") from None
    if frames > 1 and arr.ndim >= 3 and arr.shape[0] == frames:
        arr = arr[index]
    # pydicom's decoders already return YBR colour images as RGB (as_rgb defaults to True).
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        from pydicom.pixels.processing import apply_color_lut

        arr = apply_color_lut(arr, ds)
    return np.asarray(arr)


def _one_frame(ds: Dataset, index: int) -> np.ndarray:
    from pydicom.pixels.utils import pixel_array

    return np.asarray(pixel_array(ds, index=index))


def is_color(ds: Dataset) -> bool:
    """Whether the image has three samples per pixel or a palette."""
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    return int(ds.get("SamplesPerPixel", 1) or 1) == 3 or photometric == "PALETTE COLOR"


def modality_values(ds: Dataset, index: int = 0) -> np.ndarray:
    """One frame in modality units (Modality LUT or rescale applied), float32."""
    arr = stored_frame(ds, index)
    if is_color(ds):
        return arr.astype(np.float32)
    return np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)


def display_frame(ds: Dataset, index: int = 0, *, window: Window | None = None) -> np.ndarray:
    """One frame as 8-bit display values: HxW grayscale or HxWx3 RGB.

    ``window`` overrides the dataset's VOI; without either, the frame's own value range
    is used. MONOCHROME1 is inverted so that higher values are always brighter.
    """
    if is_color(ds):
        rgb = stored_frame(ds, index)
        return _to_uint8(rgb.astype(np.float32), *_range_of(rgb, ds))
    values = modality_values(ds, index)
    if window is not None:
        out = _apply_window(values, window)
    elif "WindowCenter" in ds or "VOILUTSequence" in ds:
        try:
            voi = np.asarray(apply_voi_lut(values, ds, index=0, prefer_lut=True), dtype=np.float32)
            out = _to_uint8(voi, float(voi.min()), float(voi.max()))
        except Exception:  # noqa: BLE001 - a broken VOI falls back to the value range
            out = _to_uint8(values, float(values.min()), float(values.max()))
    else:
        out = _to_uint8(values, float(values.min()), float(values.max()))
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 255 - out
    return out


def _range_of(arr: np.ndarray, ds: Dataset) -> tuple[float, float]:
    if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
        # Palette entries are 8- or 16-bit whatever the stored indices are.
        return 0.0, 255.0 if arr.dtype == np.uint8 else 65535.0
    bits = int(ds.get("BitsStored", 8) or 8)
    return 0.0, float(2**bits - 1)


def _apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    c, w = window.center, window.width
    fn = window.function.upper()
    if fn == "SIGMOID":
        y = 1.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
        return np.asarray(np.round(y * 255.0), dtype=np.uint8)
    if fn == "LINEAR_EXACT":
        low, high = c - w / 2, c + w / 2
    else:  # PS3.3 C.11.2.1.2.1
        low, high = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    return _to_uint8(values, low, high)


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float32) - low) / (high - low)
    return np.asarray(np.round(np.clip(scaled, 0.0, 1.0) * 255.0), dtype=np.uint8)


def model_frame(ds: Dataset, rule: str) -> int:
    """The frame a model reads of a (multi-frame) image under its manifest's ``input.frames``
    rule, and the one its heatmap is drawn over: the first, or the middle one (``all``,
    for volumes, also shows the middle one)."""
    return 0 if rule == "first" else (number_of_frames(ds) - 1) // 2


def overlay(image: np.ndarray, heat: np.ndarray | None, *, opacity: float = 0.45) -> np.ndarray:
    """``image`` (H×W grey or H×W×3 RGB, uint8) as RGB with ``heat`` (0..1) blended in.

    The heatmap is resized (bilinear) to the image; where it is below
    :data:`HEAT_FLOOR` the image is unchanged, above it the "jet" colour is mixed in up
    to ``opacity``.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError("heatmap opacity must be between 0 and 1")
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    rgb = rgb.astype(np.float32)
    if heat is None:
        return np.asarray(rgb, dtype=np.uint8)
    rows, cols = rgb.shape[:2]
    values = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0)
    values = np.clip(values, 0.0, 1.0)
    if values.shape != (rows, cols):
        values = np.asarray(Image.fromarray(values, mode="F").resize((cols, rows), Image.Resampling.BILINEAR))
    colours = _jet_lut()[np.round(values * 255.0).astype(np.uint8)]
    alpha = (opacity * np.clip((values - HEAT_FLOOR) / (1.0 - HEAT_FLOOR), 0.0, 1.0))[..., None]
    out = rgb * (1.0 - alpha) + colours * alpha
    return np.asarray(np.round(np.clip(out, 0, 255)), dtype=np.uint8)


@cache
def _jet_lut() -> np.ndarray:
    """matplotlib's "jet" as a 256-entry RGB table (looking up 8-bit levels is fast)."""
    from matplotlib import colormaps

    return np.asarray(colormaps["jet"](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0, dtype=np.float32)
