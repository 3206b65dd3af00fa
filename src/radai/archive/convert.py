"""JPEG and PNG images → DICOM instances (``radai import --as-dicom``).

Each image becomes a Secondary Capture Image (PS3.3 A.8.1) or, with ``sop_class="dx"``,
a Digital X-Ray Image For Presentation (PS3.3 A.26), with patient and study attributes
given by the caller (command-line options or a CSV file with one row per image). The
pixels are stored uncompressed, exactly as the image decodes, so that a model sees the
same values as from the original file: grayscale images become MONOCHROME2; colour
images whose three channels are equal everywhere also become MONOCHROME2 (a model's
gray→RGB replication then rebuilds the identical RGB input); other colour images are
stored as RGB. An image that came from a JPEG is marked as lossy compressed
(Lossy Image Compression (0028,2110) = 01, method ISO_10918_1), as PS3.3 C.7.6.1.1.5
requires once an image has ever been lossy compressed.

The objects are written with pydicom rather than highdicom's ``SCImage``, which fixes
Modality to OT and requires a patient orientation: imported radiographs need their real
Modality (CR, DX) for routing, and their orientation is unknown (Patient Orientation
(0020,0020) is type 2C and stays empty).

All files are converted before any is stored; if one cannot be, nothing is stored and
every failing file is named with the attribute or reason.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from radai.archive.importer import ImportSummary
from radai.archive.indexer import IndexOutcome
from radai.archive.parse import Rejection
from radai.archive.service import Archive, iter_files
from radai.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, new_uid

if TYPE_CHECKING:
    from radai.config import Settings

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

SopClassChoice = Literal["sc", "dx"]

_DATE = re.compile(r"^\d{8}$")
_CS = re.compile(r"^[A-Z0-9 _]{0,16}$")


class ConversionError(ValueError):
    """An image that cannot be converted; the message names the attribute, not its value."""


@dataclass(frozen=True)
class ImageAttributes:
    """Patient, study and series attributes given to one converted image."""

    patient_id: str = ""
    patient_name: str = ""
    #: M, F or O (PS3.3 C.7.1.1, Patient's Sex).
    patient_sex: str = ""
    #: YYYYMMDD.
    patient_birth_date: str = ""
    #: YYYYMMDD (default: today).
    study_date: str = ""
    study_description: str = ""
    series_description: str = ""
    accession_number: str = ""
    #: Body Part Examined (PS3.16 CID 4031 defined terms, e.g. CHEST).
    body_part: str = ""
    #: Modality (default OT for Secondary Capture, DX for DX).
    modality: str = ""
    #: View Position (e.g. PA, AP, LL).
    view_position: str = ""
    institution: str = ""
    referring_physician: str = ""
    #: Imager Pixel Spacing in mm, "row,column" (required for DX).
    pixel_spacing: str = ""
    #: Patient Orientation, "row,column" (e.g. L,F; required for DX).
    patient_orientation: str = ""
    #: Images with the same non-empty key share one study (and one series).
    study_key: str = ""

    def checked(self) -> ImageAttributes:
        """The attributes normalised; ConversionError naming the first invalid one."""
        sex = self.patient_sex.strip().upper()
        if sex not in ("", "M", "F", "O"):
            raise ConversionError("Patient's Sex (0010,0040) must be M, F or O")
        for name, value in (("Patient's Birth Date (0010,0030)", self.patient_birth_date),
                            ("Study Date (0008,0020)", self.study_date)):
            if value.strip() and not _valid_date(value.strip()):
                raise ConversionError(f"{name} must be a date YYYYMMDD")
        checked = replace(self, patient_sex=sex, patient_birth_date=self.patient_birth_date.strip(),
                          study_date=self.study_date.strip(), body_part=self.body_part.strip().upper(),
                          modality=self.modality.strip().upper(),
                          view_position=self.view_position.strip().upper())
        for name, value in (("Body Part Examined (0018,0015)", checked.body_part),
                            ("Modality (0008,0060)", checked.modality),
                            ("View Position (0018,5101)", checked.view_position)):
            if not _CS.match(value):
                raise ConversionError(f"{name} must be at most 16 of A-Z, 0-9, space, _")
        for name, value, limit in (("Patient ID (0010,0020)", checked.patient_id, 64),
                                   ("Accession Number (0008,0050)", checked.accession_number, 16),
                                   ("Study Description (0008,1030)", checked.study_description, 64),
                                   ("Series Description (0008,103E)", checked.series_description, 64),
                                   ("Institution Name (0008,0080)", checked.institution, 64)):
            if len(value) > limit or "\\" in value:
                raise ConversionError(f"{name} must be at most {limit} characters without backslash")
        return checked


def _valid_date(value: str) -> bool:
    if not _DATE.match(value):
        return False
    try:
        datetime.strptime(value, "%Y%m%d")
    except ValueError:
        return False
    return True


#: CSV columns (header names) and the attribute each fills.
CSV_COLUMNS = {
    "file": "file", "patient_id": "patient_id", "patient_name": "patient_name",
    "sex": "patient_sex", "patient_sex": "patient_sex", "birth_date": "patient_birth_date",
    "patient_birth_date": "patient_birth_date", "study_date": "study_date",
    "study_description": "study_description", "series_description": "series_description",
    "accession": "accession_number", "accession_number": "accession_number",
    "body_part": "body_part", "modality": "modality", "view_position": "view_position",
    "institution": "institution", "referring_physician": "referring_physician", "study": "study_key",
    "pixel_spacing": "pixel_spacing", "patient_orientation": "patient_orientation",
}


def read_csv(path: Path, defaults: ImageAttributes) -> dict[Path, ImageAttributes]:
    """Attributes per image from a CSV (header row; ``file`` relative to the CSV's folder).

    Empty cells take the value of ``defaults``. Rows with the same ``study`` (or, without
    that column, the same ``accession``) form one study.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path}: cannot be read ({type(exc).__name__})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "file" not in header:
        raise ConversionError(f"{path}: the header has no 'file' column")
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise ConversionError(f"{path}: unknown column {unknown[0]!r}")
    result: dict[Path, ImageAttributes] = {}
    for line, row in enumerate(reader, start=2):
        values = {CSV_COLUMNS[k.strip().lower()]: (v or "").strip() for k, v in row.items() if k}
        name = values.pop("file", "")
        if not name:
            raise ConversionError(f"{path}: line {line}: the 'file' cell is empty")
        image = (path.parent / name).resolve()
        if "study_key" not in values and values.get("accession_number"):
            values["study_key"] = "accession:" + values["accession_number"]
        attrs = replace(defaults, **{k: v for k, v in values.items() if v})
        if image in result:
            raise ConversionError(f"{path}: line {line}: {name} is listed twice")
        result[image] = attrs
    return result


@dataclass
class _Study:
    study_uid: str = field(default_factory=new_uid)
    series_uid: str = field(default_factory=new_uid)
    count: int = 0


def image_to_dataset(path: Path, attrs: ImageAttributes, *, sop_class: SopClassChoice,
                     study_uid: str, series_uid: str, instance_number: int,
                     now: datetime | None = None) -> Dataset:
    """One JPEG/PNG file as a DICOM dataset (file meta included); ConversionError names the file."""
    attrs = attrs.checked()
    pixels, lossy = _read_pixels(path)
    now = now or datetime.now(UTC)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = UID(SECONDARY_CAPTURE if sop_class == "sc" else DX_FOR_PRESENTATION)
    ds.SOPInstanceUID = new_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    # Patient (C.7.1.1)
    ds.PatientName = attrs.patient_name
    ds.PatientID = attrs.patient_id
    ds.PatientBirthDate = attrs.patient_birth_date
    ds.PatientSex = attrs.patient_sex
    # General Study (C.7.2.1)
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = attrs.study_date or now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S") if not attrs.study_date else ""
    ds.ReferringPhysicianName = attrs.referring_physician
    ds.StudyID = "1"
    ds.AccessionNumber = attrs.accession_number
    if attrs.study_description:
        ds.StudyDescription = attrs.study_description
    # General Series (C.7.3.1)
    ds.Modality = attrs.modality or ("OT" if sop_class == "sc" else "DX")
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    if attrs.series_description:
        ds.SeriesDescription = attrs.series_description
    if attrs.body_part:
        ds.BodyPartExamined = attrs.body_part
    else:
        # Type 2C when the body part may be paired; unknown here, so present and empty.
        ds.Laterality = ""
    # General Equipment (C.7.5.1)
    ds.Manufacturer = ""
    if attrs.institution:
        ds.InstitutionName = attrs.institution
    # General Image (C.7.6.1)
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = ""
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    ds.BurnedInAnnotation = "NO" if sop_class == "dx" else "YES"
    ds.LossyImageCompression = "01" if lossy else "00"
    if lossy:
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    _pixel_module(ds, pixels)
    if sop_class == "sc":
        ds.ConversionType = "WSD"  # SC Equipment (C.8.6.1): converted on a workstation
        if attrs.view_position:
            ds.ViewPosition = attrs.view_position
    else:
        _dx_modules(ds, attrs, pixels)
    return ds


def _read_pixels(path: Path) -> tuple[np.ndarray, bool]:
    """Decoded pixels (H×W gray or H×W×3 RGB; uint8 or uint16) and whether the source was lossy."""
    try:
        with Image.open(path) as img:
            fmt = img.format
            if fmt not in ("JPEG", "PNG"):
                raise ConversionError(f"{path}: is not a JPEG or PNG image")
            if getattr(img, "n_frames", 1) > 1:
                raise ConversionError(f"{path}: animated images are not supported")
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img)
                if arr.min() < 0 or arr.max() > 65535:
                    raise ConversionError(f"{path}: pixel values do not fit 16 bits")
                pixels = arr.astype(np.uint16)
            elif mode in ("L", "1", "LA"):
                pixels = np.asarray(img.convert("L"))
            else:
                rgb = np.asarray(img.convert("RGB"))
                gray = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
                pixels = np.ascontiguousarray(rgb[..., 0]) if gray else rgb
    except ConversionError:
        raise
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ConversionError(f"{path}: cannot be read as an image ({type(exc).__name__})") from None
    if pixels.shape[0] > 65535 or pixels.shape[1] > 65535:
        raise ConversionError(f"{path}: Rows/Columns exceed 65535")
    return np.ascontiguousarray(pixels), fmt == "JPEG"


def _pixel_module(ds: Dataset, pixels: np.ndarray) -> None:
    """Image Pixel module (C.7.6.3), uncompressed."""
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    bits = 16 if pixels.dtype == np.uint16 else 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if pixels.ndim == 3:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
    data = pixels.astype("<u2").tobytes() if bits == 16 else pixels.tobytes()
    ds.PixelData = data + (b"\0" if len(data) % 2 else b"")
    ds["PixelData"].VR = "OW" if bits == 16 else "OB"


def _dx_modules(ds: Dataset, attrs: ImageAttributes, pixels: np.ndarray) -> None:
    """DX Series, DX Anatomy Imaged, DX Image, DX Detector, VOI LUT (PS3.3 C.8.11)."""
    if pixels.ndim == 3:
        raise ConversionError("a DX image must be grayscale (Photometric Interpretation "
                              "MONOCHROME1/2, PS3.3 C.8.11.3.1.1); this image has colour")
    if ds.Modality != "DX":
        raise ConversionError("Modality (0008,0060) of a DX image must be DX")
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ImageLaterality = "U"
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    # A window over the whole stored range maps values to themselves (C.11.2.1.2.1).
    full = 2 ** int(ds.BitsStored)
    ds.WindowCenter = full // 2
    ds.WindowWidth = full
    if not attrs.pixel_spacing:
        raise ConversionError("Imager Pixel Spacing (0018,1164) is required for a DX image "
                              "(PS3.3 C.8.11.4, type 1)")
    ds.ImagerPixelSpacing = list(_spacing(attrs.pixel_spacing))
    if not attrs.patient_orientation:
        raise ConversionError("Patient Orientation (0020,0020) is required for a DX image "
                              "(PS3.3 C.8.11.3, type 1C), e.g. L,F")
    ds.PatientOrientation = _orientation(attrs.patient_orientation)
    region = _ANATOMIC_REGIONS.get(attrs.body_part)
    if attrs.body_part and region is None:
        raise ConversionError("Body Part Examined (0018,0015) has no anatomic region code here "
                              f"(known: {', '.join(sorted(_ANATOMIC_REGIONS))}); use Secondary Capture")
    item = Dataset()
    if region is not None:
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = region
    ds.AnatomicRegionSequence = Sequence([item] if region is not None else [])
    ds.DetectorType = ""  # type 2: unknown for a converted image
    ds.PositionerType = ""
    ds.ViewPosition = attrs.view_position
    ds.AcquisitionContextSequence = Sequence()


#: Body Part Examined → Anatomic Region (PS3.16 CID 4009 / CID 4031, SNOMED CT).
_ANATOMIC_REGIONS = {
    "CHEST": ("51185008", "SCT", "Chest"),
    "HEAD": ("69536005", "SCT", "Head"),
    "SKULL": ("89546000", "SCT", "Skull"),
    "HAND": ("85562004", "SCT", "Hand"),
    "FOOT": ("56459004", "SCT", "Foot"),
    "KNEE": ("72696002", "SCT", "Knee"),
}


def _orientation(text: str) -> list[str]:
    parts = [p.strip().upper() for p in text.replace("\\", ",").split(",")]
    if len(parts) != 2 or not all(re.fullmatch(r"[APRLHF]{1,3}", p) for p in parts):
        raise ConversionError("Patient Orientation (0020,0020) must be two of A, P, R, L, H, F "
                              "(e.g. L,F)")
    return parts


def _spacing(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.replace("\\", ",").split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values, parts = values * 2, parts * 2
    if len(values) != 2 or not all(0 < v < 1000 for v in values):
        raise ConversionError("Imager Pixel Spacing (0018,1164) must be 'row,column' in mm")
    return parts[0], parts[1]


@dataclass
class ConversionSummary(ImportSummary):
    """An import summary plus the files that could not be converted."""

    not_converted: list[tuple[Path, str]] = field(default_factory=list)


def convert_and_store(archive: Archive, paths: Iterable[Path], *, defaults: ImageAttributes,
                      per_file: dict[Path, ImageAttributes] | None = None,
                      sop_class: SopClassChoice = "sc",
                      on_file: Callable[[Path], None] | None = None) -> ConversionSummary:
    """Convert every JPEG/PNG below ``paths``, then store them (``source="import"``).

    With ``per_file`` (from :func:`read_csv`) only the files it lists are converted, each
    with its row's attributes. If any file cannot be converted nothing is stored.
    """
    summary = ConversionSummary()
    files = sorted(per_file) if per_file is not None else [
        p for p in iter_files(paths) if p.suffix.lower() in IMAGE_SUFFIXES]
    studies: dict[str, _Study] = {}
    converted: list[tuple[Path, bytes]] = []
    for path in files:
        attrs = per_file[path] if per_file is not None else defaults
        key = attrs.study_key or f"file:{path}"
        study = studies.setdefault(key, _Study())
        study.count += 1
        try:
            ds = image_to_dataset(path, attrs, sop_class=sop_class, study_uid=study.study_uid,
                                  series_uid=study.series_uid, instance_number=study.count)
        except ConversionError as exc:
            message = str(exc)
            summary.not_converted.append((path, message.removeprefix(f"{path}: ")))
            continue
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        converted.append((path, buf.getvalue()))
    if summary.not_converted:
        summary.rejected.extend(summary.not_converted)
        return summary
    for path, data in converted:
        try:
            outcome = archive.store(data, source="import")
        except Rejection as rej:
            summary.rejected.append((path, rej.message))
        else:
            summary.studies.add(outcome.study_instance_uid)
            if outcome.outcome is IndexOutcome.STORED:
                summary.stored += 1
            else:
                summary.duplicates += 1
        if on_file is not None:
            on_file(path)
    return summary


def attributes_from_options(**options: str | None) -> ImageAttributes:
    """ImageAttributes from command-line options named like its fields (None ignored)."""
    names = {f.name for f in fields(ImageAttributes)}
    return ImageAttributes(**{k: v for k, v in options.items() if v is not None and k in names}).checked()


def run_convert_import(settings: Settings, paths: list[Path], *, csv_file: Path | None,
                       sop_class: str, attributes: dict[str, str | None]) -> int:
    """``radai import --as-dicom``: convert, store, print the summary; exit status 1 on any failure."""
    from rich.console import Console

    from radai.app import Radai
    from radai.archive.cli import print_summary

    out = Console()
    try:
        defaults = attributes_from_options(**attributes)
        per_file = read_csv(csv_file, defaults) if csv_file is not None else None
    except ConversionError as exc:
        out.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        return 2
    if per_file is not None and paths:
        wanted = {p.resolve() for p in paths}
        per_file = {k: v for k, v in per_file.items()
                    if k in wanted or any(k.is_relative_to(w) for w in wanted)}
    radai = Radai(settings)
    radai.prepare()
    try:
        summary = convert_and_store(radai.archive, paths, defaults=defaults, per_file=per_file,
                                    sop_class="dx" if sop_class == "dx" else "sc")
    finally:
        radai.stop()
    if summary.not_converted:
        out.print(f"nothing stored: {len(summary.not_converted)} file(s) cannot be converted",
                  highlight=False)
    print_summary(summary, out)
    return 1 if summary.rejected else 0
