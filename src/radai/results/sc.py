"""Marked-up images: a Secondary Capture series with the heatmap and a burned-in caption.

One Secondary Capture Image (SOP Class 1.2.840.10008.5.1.4.1.1.7, PS3.3 A.8.1) per input
image of the task. The classic single-frame SC is chosen over Multi-frame True Color SC
because every PACS and viewer in service displays it, and one SC per source keeps a
one-to-one link (Source Image Sequence) and the source's Rows and Columns.

Pixels: the source frame through the shared display pipeline
(:func:`radai.imaging.display_frame`: modality LUT, VOI, MONOCHROME1 inversion), the
heatmap resized to the image and blended in with matplotlib's "jet" colour map where
it is above a floor, and a caption burned in with Pillow::

    AI RESULT — NOT FOR DIAGNOSIS — <model name> <version>
    <finding>: <probability> (<positive|negative>) …

Size (the Moscow experiment's rule): the file may not be larger than the source's,
except for sources under 512 × 512. JPEG-LS lossless is tried first; if it is too large,
JPEG-LS near-lossless (maximum error 3), then JPEG 2000 with a compression ratio chosen to
fit. Lossy results carry Lossy Image Compression "01" with ratio and method
(PS3.3 §C.7.6.1.1.5), as does any SC of an already lossy source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.pixels.utils import compress
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    JPEGLSLossless,
    JPEGLSNearLossless,
)

from radai.imaging import display_frame, overlay
from radai.models.api import FindingScore
from radai.results.common import (
    CHARACTER_SET,
    MANUFACTURER,
    NOT_FOR_DIAGNOSIS,
    Algorithm,
    add_algorithm,
    quiet_library_output,
    require_same_study,
    result_uid,
    to_part10,
)
from radai.results.inputs import Heatmap, SourceImage

#: Series Number of radai's SC series.
SC_SERIES_NUMBER = 9902
#: Below this many rows or columns a source is exempt from the size rule.
SIZE_RULE_MIN = 512
#: (121322, DCM, "Source image for image processing operation"), PS3.16 CID 7202.
_SOURCE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")
_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
_FONT_FILE = "DejaVuSans-Bold.ttf"


class CaptureTooLargeError(ValueError):
    """No encoding makes the marked-up image as small as its source."""


def caption_lines(algorithm: Algorithm, findings: Sequence[FindingScore]) -> list[str]:
    """The burned-in caption: the warning with the model, then one line of findings."""
    lines = [f"{NOT_FOR_DIAGNOSIS} — {algorithm.label}"]
    if findings:
        lines.append("   ".join(
            f"{f.label}: {f.probability:.2f} ({'positive' if f.positive else 'negative'})"
            for f in findings))
    return lines


@cache
def _font_path() -> str | None:
    for folder in _FONT_DIRS:
        if (folder / _FONT_FILE).is_file():
            return str(folder / _FONT_FILE)
    return None


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = _font_path()
    if path is not None:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def burn_caption(rgb: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """``rgb`` with ``lines`` written in white on a dark band across the top.

    The font (DejaVu Sans Bold when installed, else Pillow's default) is sized to the
    image and shrunk until the longest line fits its width.
    """
    image = Image.fromarray(rgb, mode="RGB")
    draw = ImageDraw.Draw(image)
    rows, cols = rgb.shape[:2]
    margin = max(2, cols // 100)
    size = max(8, min(rows, cols) // 36)
    font = _font(size)
    while size > 6 and max(draw.textlength(line, font=font) for line in lines) > cols - 2 * margin:
        size -= 1
        font = _font(size)
    line_height = int(size * 1.25)
    band = margin * 2 + line_height * len(lines)
    top = Image.new("RGB", (cols, min(rows, band)), (0, 0, 0))
    image.paste(Image.blend(image.crop((0, 0, cols, min(rows, band))), top, 0.7), (0, 0))
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * line_height), line, fill=(255, 255, 255), font=font)
    return np.asarray(image, dtype=np.uint8)


@dataclass(frozen=True)
class _Encoded:
    dataset: Dataset
    size: int


def _source_reference(source: SourceImage) -> Dataset:
    ds = source.dataset
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        ref.ReferencedFrameNumber = source.frame + 1
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = _SOURCE_PURPOSE
    ref.PurposeOfReferenceCodeSequence = [purpose]
    return ref


def _build(source: SourceImage, rgb: np.ndarray, *, algorithm: Algorithm, index: int) -> Dataset:
    src = source.dataset
    with quiet_library_output():
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=src,
            pixel_array=rgb,
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=result_uid("sc-series", algorithm, str(src.SeriesInstanceUID)),
            series_number=SC_SERIES_NUMBER,
            sop_instance_uid=result_uid("sc", algorithm, str(src.SOPInstanceUID), str(source.frame)),
            instance_number=index + 1,
            manufacturer=MANUFACTURER,
            # highdicom takes single-letter orientations only; the source's own value
            # (which may be empty or combined, e.g. "AL") replaces this just below.
            patient_orientation=("L", "F"),
            transfer_syntax_uid=ExplicitVRLittleEndian,
            series_description=f"AI heatmap {algorithm.name}"[:64],
            manufacturer_model_name="radai results",
            specific_character_set=CHARACTER_SET,
        )
    sc.PatientOrientation = src.get("PatientOrientation", "")
    sc.ConversionType = "WSD"  # workstation: a derived image, not digitised film or video
    sc.BurnedInAnnotation = "YES"
    sc.OperatorsName = "AI"
    sc.DerivationDescription = (
        f"Heatmap of {algorithm.name} {algorithm.version} over the windowed source image; "
        "caption burned in")[:1024]
    sc.SourceImageSequence = [_source_reference(source)]
    for keyword in ("Laterality", "BodyPartExamined"):
        if src.get(keyword):
            setattr(sc, keyword, src.get(keyword))
    add_algorithm(sc, algorithm)
    return sc


#: Transfer syntaxes whose compression loses information.
_LOSSY_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", JPEG2000,
                             JPEGLSNearLossless, "1.2.840.10008.1.2.4.203"})


@dataclass(frozen=True)
class _LossyHistory:
    """Lossy compression already applied to the source (PS3.3 §C.7.6.1.1.5)."""

    lossy: bool
    ratios: tuple[str, ...]
    methods: tuple[str, ...]


def _values(ds: Dataset, keyword: str) -> tuple[str, ...]:
    if keyword not in ds or ds[keyword].value in (None, ""):
        return ()
    value = ds[keyword].value
    return tuple(str(v) for v in (value if isinstance(value, MultiValue) else [value]))


def _lossy_history(src: Dataset) -> _LossyHistory:
    ts = str(src.file_meta.get("TransferSyntaxUID", "")) if hasattr(src, "file_meta") else ""
    if str(src.get("LossyImageCompression", "00")) != "01" and ts not in _LOSSY_SYNTAXES:
        return _LossyHistory(False, (), ())
    return _LossyHistory(True, _values(src, "LossyImageCompressionRatio"),
                         _values(src, "LossyImageCompressionMethod"))


def _encode(sc: Dataset, rgb: np.ndarray, ts: UID, history: _LossyHistory,
            **opts: object) -> _Encoded:
    ds = sc.copy()
    ds.file_meta = FileMetaDataset(sc.file_meta)
    if ts == JPEG2000:
        # Lossy JPEG 2000 of colour images uses the irreversible colour transform.
        ds.PhotometricInterpretation = "YBR_ICT"
    compress(ds, ts, rgb, generate_instance_uid=False, **opts)  # type: ignore[arg-type]
    ratios, methods = list(history.ratios), list(history.methods)
    if ts in (JPEG2000, JPEGLSNearLossless):
        ratios.append(f"{rgb.size / max(1, len(ds.PixelData)):.2f}")
        methods.append("ISO_15444_1" if ts == JPEG2000 else "ISO_14495_1")
    if history.lossy or ts in (JPEG2000, JPEGLSNearLossless):
        ds.LossyImageCompression = "01"
        if ratios and methods:
            ds.LossyImageCompressionRatio = ratios
            ds.LossyImageCompressionMethod = methods
    return _Encoded(ds, len(to_part10(ds)))


def _fit(sc: Dataset, rgb: np.ndarray, source: SourceImage, history: _LossyHistory) -> Dataset:
    rows, cols = rgb.shape[:2]
    exempt = rows < SIZE_RULE_MIN or cols < SIZE_RULE_MIN
    budget = source.size_bytes
    lossless = _encode(sc, rgb, JPEGLSLossless, history)
    if exempt or lossless.size <= budget:
        return lossless.dataset
    near = _encode(sc, rgb, JPEGLSNearLossless, history, jls_error=3)
    if near.size <= budget:
        return near.dataset
    room = budget - (near.size - len(near.dataset.PixelData))
    if room <= 0:
        raise CaptureTooLargeError("the source is smaller than a marked-up image's header")
    ratio = max(2.0, rgb.size / room * 1.05)
    for _ in range(4):
        j2k = _encode(sc, rgb, JPEG2000, history, j2k_cr=[ratio])
        if j2k.size <= budget:
            return j2k.dataset
        ratio *= 1.5
    raise CaptureTooLargeError("no encoding makes the marked-up image as small as its source")


def heatmap_captures(*, sources: Sequence[SourceImage], algorithm: Algorithm,
                     findings: Sequence[FindingScore], heatmaps: Sequence[Heatmap] = (),
                     opacity: float = 0.45) -> list[Dataset]:
    """One Secondary Capture Image per source image (PS3.3 A.8.1), heatmaps blended in.

    ``sources`` are the task's inputs in order (``Heatmap.input_index`` points into
    them) and must carry Pixel Data. Heatmaps of one input are combined by their
    maximum. Series and SOP Instance UIDs are derived from the source's and the
    model's, so making the captures again gives the same instances.

    Raises :class:`radai.imaging.PixelError` when a source cannot be decoded and
    :class:`CaptureTooLargeError` when the size rule cannot be met.
    """
    require_same_study([s.dataset for s in sources])
    per_input: dict[int, np.ndarray] = {}
    for hm in heatmaps:
        if hm.input_index >= len(sources):
            raise ValueError(f"heatmap input_index {hm.input_index} has no source image")
        values = np.asarray(hm.values, dtype=np.float32)
        if hm.input_index in per_input and per_input[hm.input_index].shape == values.shape:
            per_input[hm.input_index] = np.maximum(per_input[hm.input_index], values)
        else:
            per_input.setdefault(hm.input_index, values)
    lines = caption_lines(algorithm, findings)
    out = []
    for index, source in enumerate(sources):
        base = display_frame(source.dataset, source.frame)
        rgb = burn_caption(overlay(base, per_input.get(index), opacity=opacity), lines)
        sc = _build(source, rgb, algorithm=algorithm, index=index)
        out.append(_fit(sc, rgb, source, _lossy_history(source.dataset)))
    return out

