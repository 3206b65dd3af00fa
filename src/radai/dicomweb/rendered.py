"""Rendered and thumbnail resources (PS3.18 §10.4.1.1.3, §10.4.1.3, §8.3.5.1).

Pixels go through the shared display pipeline :func:`radai.imaging.display_frame`
(Modality LUT, VOI LUT or window, MONOCHROME1 inversion); this module parses the
rendering parameters, selects the region, scales it to the viewport and encodes the
result with Pillow as JPEG or PNG.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset

from radai.dicomweb.errors import BadRequest, NotAcceptable, NotFound
from radai.dicomweb.media import JPEG, PNG
from radai.dicomweb.wado import StoredInstance
from radai.imaging import PixelError, Window, display_frame, number_of_frames

#: Window functions of the ``window`` parameter (PS3.18 §8.3.5.1.4) → VOI LUT Function.
_WINDOW_FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}
_MAX_VIEWPORT = 8192
DEFAULT_QUALITY = 90


@dataclass(frozen=True)
class Viewport:
    """Output size and, optionally, the source region (PS3.18 §8.3.5.1.3)."""

    width: int
    height: int
    #: Source region (sx, sy, sw, sh) in pixels of the image; None: the whole image.
    region: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class RenderParams:
    """The rendering parameters of one request."""

    media_type: str
    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = DEFAULT_QUALITY


def _numbers(text: str, name: str, count: Sequence[int]) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in count:
        raise BadRequest(f"{name} has the wrong number of values")
    try:
        return [float(p) if p else float("nan") for p in parts]
    except ValueError:
        raise BadRequest(f"{name} values must be numbers") from None


def parse_window(text: str) -> Window:
    """``window=center,width[,function]`` (PS3.18 §8.3.5.1.4)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise BadRequest("window must be center,width or center,width,function")
    function = _WINDOW_FUNCTIONS.get(parts[2].lower() if len(parts) == 3 else "linear")
    if function is None:
        raise BadRequest("the window function must be linear, linear-exact or sigmoid")
    try:
        return Window(float(parts[0]), float(parts[1]), function)
    except ValueError as exc:
        raise BadRequest(f"window: {exc}") from None


def parse_viewport(text: str) -> Viewport:
    """``viewport=vw,vh[,sx,sy,sw,sh]`` (PS3.18 §8.3.5.1.3)."""
    values = _numbers(text, "viewport", (2, 6))
    vw, vh = values[0], values[1]
    if not (vw == vw and vh == vh) or not (1 <= vw <= _MAX_VIEWPORT and 1 <= vh <= _MAX_VIEWPORT):
        raise BadRequest(f"viewport width and height must be whole numbers from 1 to {_MAX_VIEWPORT}")
    if vw != int(vw) or vh != int(vh):
        raise BadRequest("viewport width and height must be whole numbers")
    region = None
    if len(values) == 6:
        sx, sy, sw, sh = (0.0 if v != v else v for v in values[2:])
        if sw < 0 or sh < 0 or sx < 0 or sy < 0:
            raise BadRequest("viewport source region values must not be negative")
        region = (int(sx), int(sy), int(sw), int(sh))
    return Viewport(int(vw), int(vh), region)


def parse_quality(text: str) -> int:
    """``quality=1..100`` (PS3.18 §8.3.5.1.2)."""
    try:
        value = int(text)
    except ValueError:
        raise BadRequest("quality must be a whole number from 1 to 100") from None
    if not 1 <= value <= 100:
        raise BadRequest("quality must be a whole number from 1 to 100")
    return value


def select_region(pixels: np.ndarray, region: tuple[int, int, int, int] | None) -> np.ndarray:
    """The source region of the image; width or height 0 means up to the image's edge."""
    if region is None:
        return pixels
    sx, sy, sw, sh = region
    rows, cols = pixels.shape[:2]
    if sx >= cols or sy >= rows:
        raise BadRequest("the viewport source region lies outside the image")
    right = cols if sw == 0 else min(cols, sx + sw)
    bottom = rows if sh == 0 else min(rows, sy + sh)
    return pixels[sy:bottom, sx:right]


def fit(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The size of a width×height image scaled to fit the box, aspect ratio kept."""
    scale = min(box_width / width, box_height / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode(pixels: np.ndarray, params: RenderParams) -> bytes:
    """8-bit display pixels (HxW or HxWx3) encoded as the negotiated image type."""
    image = Image.fromarray(pixels)  # uint8: HxW is "L", HxWx3 is "RGB"
    if params.viewport is not None:
        size = fit(image.width, image.height, params.viewport.width, params.viewport.height)
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if params.media_type == PNG:
        image.save(buf, format="PNG", optimize=False)
    elif params.media_type == JPEG:
        image.save(buf, format="JPEG", quality=params.quality)
    else:  # negotiation only ever picks one of the two
        raise NotAcceptable(f"rendered images are {JPEG} or {PNG}")
    return buf.getvalue()


def render_frame(ds: Dataset, index: int, params: RenderParams) -> bytes:
    """One frame (0-based) of an image, rendered."""
    try:
        pixels = display_frame(ds, index, window=params.window)
    except PixelError as exc:
        raise NotAcceptable(f"the image cannot be rendered: {exc}") from None
    region = params.viewport.region if params.viewport is not None else None
    return encode(np.ascontiguousarray(select_region(pixels, region)), params)


def read_image(inst: StoredInstance) -> Dataset:
    """The dataset of an instance that has pixels; :class:`NotAcceptable` otherwise."""
    ds = dcmread(inst.path)
    if "PixelData" not in ds:
        raise NotAcceptable("the instance has no pixel data to render")
    return ds


def render_instances(instances: Sequence[StoredInstance], params: RenderParams) -> list[bytes]:
    """The first frame of every image among ``instances``, rendered (study and series level).

    Instances without pixel data (structured reports, for example) are left out; when
    none has any, :class:`NotAcceptable`.
    """
    images = []
    for inst in instances:
        if inst.rows is None:
            continue
        ds = dcmread(inst.path)
        if "PixelData" in ds:
            images.append(render_frame(ds, 0, params))
    if not images:
        raise NotAcceptable("none of the instances has pixel data to render")
    return images


def render_frames(inst: StoredInstance, numbers: Sequence[int], params: RenderParams) -> list[bytes]:
    """The given frames (1-based) of one instance, rendered."""
    ds = read_image(inst)
    total = number_of_frames(ds)
    for n in numbers:
        if n > total:
            raise NotFound(f"frame {n} does not exist; the instance has {total}")
    return [render_frame(ds, n - 1, params) for n in numbers]


def representative(instances: Sequence[StoredInstance]) -> StoredInstance:
    """The instance a study or series thumbnail shows: the middle image of the first
    series that has images (PS3.18 §10.4.1.3 leaves the choice to the origin server)."""
    by_series: dict[str, list[StoredInstance]] = {}
    for inst in instances:
        if inst.rows is not None:
            by_series.setdefault(inst.series_instance_uid, []).append(inst)
    if not by_series:
        raise NotAcceptable("there is no image to make a thumbnail of")
    first = next(iter(by_series.values()))
    return first[len(first) // 2]
