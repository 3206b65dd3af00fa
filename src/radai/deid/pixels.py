"""Burned-in annotation: which objects are refused, and blanking regions (PS3.15 E.3.1, Clean Pixel Data).

Header de-identification cannot remove text that is part of the pixels. An object that
says it has burned-in annotation (BurnedInAnnotation (0028,0301) YES), or whose kind
is known to carry it whatever the header says, is refused unless the caller gives the
regions to blank.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import UID

from radai.deid.errors import DeidentificationRefused

#: SOP classes whose images are screen or video captures, where devices burn the
#: patient's name, ID and dates into the pixels as a matter of course.
BURNED_IN_SOP_CLASSES: frozenset[str] = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
        "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (Retired)
        "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (Retired)
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image Storage
    }
)

#: Modalities (PS3.3 C.7.3.1.1.1) whose devices overlay patient details on the image:
#: ultrasound scanners, endoscopy and external-camera capture stations, and "other"
#: (OT), the modality screen captures are usually given.
BURNED_IN_MODALITIES: frozenset[str] = frozenset({"US", "ES", "XC", "OT"})


@dataclass(frozen=True)
class Region:
    """A rectangle of the image in pixels: left column, top row, width, height."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.x < 0 or self.y < 0 or self.width <= 0 or self.height <= 0:
            raise ValueError("a pixel region needs x >= 0, y >= 0, width > 0 and height > 0")

    @classmethod
    def parse(cls, text: str) -> Region:
        """``X,Y,WIDTH,HEIGHT`` in pixels."""
        parts = text.split(",")
        if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"pixel region {text!r} is not X,Y,WIDTH,HEIGHT (four whole numbers)")
        x, y, width, height = (int(p) for p in parts)
        return cls(x, y, width, height)


def burned_in_reason(ds: Dataset) -> str | None:
    """Why ``ds`` may carry burned-in text, or None when nothing says so.

    Only objects with Pixel Data are considered. The reason names attributes and
    standard SOP classes or modalities only, never a value from the patient.
    """
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return None
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return "BurnedInAnnotation (0028,0301) is YES"
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class in BURNED_IN_SOP_CLASSES:
        return f"{UID(sop_class).name} objects commonly carry burned-in text"
    modality = str(ds.get("Modality", "")).upper()
    if modality in BURNED_IN_MODALITIES:
        return f"Modality {modality} images commonly carry burned-in text"
    return None


def blank_regions(ds: Dataset, regions: tuple[Region, ...]) -> None:
    """Blank ``regions`` in every frame, then store the pixels uncompressed (PS3.15 E.3.1).

    Compressed pixel data is decoded first (colour to RGB); the result is written in
    Explicit VR Little Endian, so the blanked pixels cannot come back from a lossy
    codec's neighbourhood. Raises DeidentificationRefused naming Rows/Columns when a region lies
    outside the image.
    """
    rows, columns = int(ds.Rows), int(ds.Columns)
    for region in regions:
        if region.x >= columns or region.y >= rows:
            raise DeidentificationRefused(
                "a pixel region starts outside the image (Rows (0028,0010), Columns (0028,0011))"
            )
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress(generate_instance_uid=False)
    photometric = str(ds.PhotometricInterpretation)
    arr = ds.pixel_array.copy()
    if photometric.startswith("YBR"):
        photometric = "RGB"  # pixel_array converts YBR to RGB
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.SamplesPerPixel)
    view = arr.reshape((frames, rows, columns, samples))
    fill = _black(ds, photometric)
    for region in regions:
        view[:, region.y : region.y + region.height, region.x : region.x + region.width, :] = fill
    had_frames = "NumberOfFrames" in ds
    if arr.dtype.itemsize <= 2:
        ds.set_pixel_data(arr, photometric, int(ds.BitsStored), generate_instance_uid=False)
        if not had_frames and "NumberOfFrames" in ds:
            # set_pixel_data adds Number of Frames 1, which turns a single-frame image
            # into a multi-frame one that then needs Frame Increment Pointer (PS3.3 C.7.6.6).
            del ds.NumberOfFrames
    else:
        # pydicom's set_pixel_data stops at 16 bits; 32-bit pixels are written as they
        # are, interleaved (Planar Configuration 0), in the little-endian syntax they came in.
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        ds.PixelData = data + b"\x00" * (len(data) % 2)
        ds.PhotometricInterpretation = photometric
        if samples > 1:
            ds.PlanarConfiguration = 0
    ds.BurnedInAnnotation = "NO"


def _black(ds: Dataset, photometric: str) -> int:
    """The stored value shown as black: the lowest (or, for MONOCHROME1, highest) Bits Stored allows."""
    bits = int(ds.BitsStored)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return high if photometric == "MONOCHROME1" else low
