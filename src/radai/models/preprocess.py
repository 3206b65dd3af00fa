"""The pixel pipeline for models: a DICOM image → one model input array, per the manifest.

Steps, each from the manifest's ``input`` section:

1. Decode one frame (``frames``: first or middle of a multi-frame image; ``all`` frames
   for 3D models) through :mod:`radai.imaging`, so every transfer syntax radai accepts
   decodes here as it does for WADO-RS rendering.
2. Grayscale pipeline (PS3.3 §C.11, PS3.4 Annex N) per ``windowing``:
   ``none`` keeps the stored values untouched; ``dataset`` applies the dataset's VOI LUT
   or window (C.11.2) when it has one, mapping the VOI output range to 0..255, keeps
   8-bit images without modality or VOI transformation as stored, and maps other
   images' value range to 0..255;
   ``minmax`` maps the frame's modality value range to 0..255; a fixed ``{center,
   width}`` window applies that window. MONOCHROME1 is inverted so that higher values
   are brighter (C.7.6.3.1.2), as models are trained on.
3. Channels: grayscale replicated to RGB, or RGB reduced to luma (ITU-R BT.601 weights,
   as Pillow's ``convert("L")``).
4. Resize to ``size`` with Pillow's filter named by ``resize`` (the filters Keras and
   most training code use, so that inputs match the model's training pipeline exactly).
5. ``normalisation`` and ``layout`` (NHWC → H×W×C, NCHW → C×H×W; 3D: D×H×W×C or C×D×H×W).

8-bit images stay integers until normalisation, so an 8-bit image yields bit for bit the
input its JPEG/PNG original would have given.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_voi_lut

from radai.imaging import (
    PixelError,
    Window,
    display_frame,
    is_color,
    modality_values,
    model_frame,
    number_of_frames,
    stored_frame,
)
from radai.models.api import DefectCategory, ModelDefect
from radai.models.manifest import (
    FixedWindow,
    InputSpec,
    MeanStdNormalisation,
    MinusOneOneNormalisation,
    ScaleNormalisation,
)

_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def _defect(reason: str) -> ModelDefect:
    return ModelDefect(DefectCategory.INPUT_NOT_SUITED, reason)


def prepare_input(ds: Dataset, spec: InputSpec) -> np.ndarray:
    """One model input (no batch axis) from ``ds``; ModelDefect(INPUT_NOT_SUITED) if it cannot be."""
    frames = number_of_frames(ds)
    try:
        if spec.frames == "all":
            slices = [_frame_image(ds, i, spec) for i in range(frames)]
            volume = np.stack(slices)  # D×H×W×C
            return np.ascontiguousarray(volume if spec.layout == "NHWC"
                                        else volume.transpose(3, 0, 1, 2))
        image = _frame_image(ds, model_frame(ds, spec.frames), spec)
    except PixelError as exc:
        raise _defect(f"unreadable pixels: {exc}") from None
    return np.ascontiguousarray(image if spec.layout == "NHWC" else image.transpose(2, 0, 1))


def _frame_image(ds: Dataset, index: int, spec: InputSpec) -> np.ndarray:
    """H×W×C float32, resized and normalised."""
    image = frame_values(ds, index, spec.windowing)
    image = _channels(image, spec.channels)
    image = resize(image, spec.size, spec.resize)
    return normalise(image, spec)


def frame_values(ds: Dataset, index: int, windowing: str | FixedWindow) -> np.ndarray:
    """One frame after the grayscale pipeline: H×W (grayscale) or H×W×3 (colour).

    8-bit results are ``uint8``; stored values of deeper images under ``none`` are float32.
    """
    if "PixelData" not in ds:
        raise PixelError("the instance has no Pixel Data (7FE0,0010)")
    if is_color(ds):
        rgb = stored_frame(ds, index)
        if rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise PixelError("colour pixel data is not three samples per pixel")
        if rgb.dtype == np.uint8:
            return rgb
        bits = int(ds.get("BitsStored", 16) or 16)
        return np.asarray(np.round(rgb.astype(np.float32) * 255.0 / (2**bits - 1)), dtype=np.uint8)
    monochrome1 = str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"
    if isinstance(windowing, FixedWindow):
        return display_frame(ds, index, window=Window(windowing.center, windowing.width))
    if windowing == "none" or (windowing == "dataset" and _plain_8bit(ds)):
        return _stored(ds, index, invert=monochrome1)
    if windowing == "dataset":
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            return _dataset_voi(ds, index, invert=monochrome1)
        return display_frame(ds, index)
    values = modality_values(ds, index)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        out = np.zeros(values.shape, dtype=np.uint8)
    else:
        out = np.asarray(np.round((values - low) / (high - low) * 255.0), dtype=np.uint8)
    return 255 - out if monochrome1 else out


def _dataset_voi(ds: Dataset, index: int, *, invert: bool) -> np.ndarray:
    """The dataset's first VOI (LUT preferred, else window) mapped from its output range.

    The VOI output range is fixed by the standard (C.11.2.1.2: the LUT's bit depth, or for
    a window the range of the modality values), so 0..255 means the same for every image
    and a window spanning the stored range leaves 8-bit values unchanged.
    """
    values = modality_values(ds, index)
    try:
        voi = np.asarray(apply_voi_lut(values, ds, index=0, prefer_lut=True), dtype=np.float64)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise PixelError("the VOI LUT or window (0028,1050)/(0028,3010) cannot be applied") from None
    if "VOILUTSequence" in ds:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        low, high = 0.0, float(2**bits - 1)
    elif "ModalityLUTSequence" in ds:
        low, high = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    else:
        bits = int(ds.BitsStored)
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        low, high = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) if signed else (0.0, 2.0**bits - 1)
        slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
        if slope is not None and intercept is not None:
            low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
    out = np.asarray(np.round(np.clip((voi - low) / (high - low), 0.0, 1.0) * 255.0), dtype=np.uint8)
    return 255 - out if invert else out


def _plain_8bit(ds: Dataset) -> bool:
    """8-bit unsigned stored values with no modality or VOI transformation to apply."""
    if int(ds.get("BitsStored", 0) or 0) > 8 or int(ds.get("PixelRepresentation", 0) or 0) != 0:
        return False
    if "ModalityLUTSequence" in ds or "WindowCenter" in ds or "VOILUTSequence" in ds:
        return False
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return slope == 1 and intercept == 0


def _stored(ds: Dataset, index: int, *, invert: bool) -> np.ndarray:
    arr = stored_frame(ds, index)
    bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8) or 8)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if arr.dtype == np.uint8 or (bits <= 8 and not signed):
        out = arr.astype(np.uint8)
        return (np.uint8(2**bits - 1) - out) if invert else out
    values = arr.astype(np.float32)
    if invert:
        low, high = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) if signed else (0.0, 2.0**bits - 1)
        values = (low + high) - values
    return values


def _channels(image: np.ndarray, channels: int) -> np.ndarray:
    if image.ndim == 2:
        image = image[..., None]
    if channels == 3 and image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    if channels == 1 and image.shape[-1] == 3:
        if image.dtype == np.uint8:
            return np.asarray(Image.fromarray(image, "RGB").convert("L"))[..., None]
        weights = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
        return (image.astype(np.float32) @ weights)[..., None]
    return image


def resize(image: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    """H×W×C to ``size`` (rows, columns) with Pillow's ``method`` filter; dtype kept."""
    rows, cols = size
    if image.shape[:2] == (rows, cols):
        return image
    resample = _FILTERS[method]
    if image.dtype == np.uint8 and image.shape[-1] in (1, 3):
        mode = "L" if image.shape[-1] == 1 else "RGB"
        pil = Image.fromarray(image[..., 0] if mode == "L" else image, mode)
        out = np.asarray(pil.resize((cols, rows), resample=resample))
        return out[..., None] if mode == "L" else out
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), "F")
                         .resize((cols, rows), resample=resample))
              for c in range(image.shape[-1])]
    return np.stack(planes, axis=-1)


def normalise(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Apply the manifest's normalisation; float32 out."""
    x = image.astype(np.float32)
    norm = spec.normalisation
    if isinstance(norm, MinusOneOneNormalisation):
        # Keras' preprocess_input (mode "tf"): x / 127.5 - 1, in this order.
        return x / np.float32(127.5) - np.float32(1.0)
    if isinstance(norm, ScaleNormalisation):
        out = x / np.float32(norm.divisor)
        return out + np.float32(norm.offset) if norm.offset else out
    assert isinstance(norm, MeanStdNormalisation)
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    return (x / np.float32(norm.divisor) - mean) / std
