"""De-identification of what the vendor view sends: instances, metadata and search results.

Everything goes through the de-identification engine (:func:`radai.deid.deidentify`,
PS3.15 Annex E Basic Profile with the options of ``vendor.options``) under the
configured key, so the pseudonyms and shifted dates a vendor sees are the same in every
response and across requests.

- Pixel data is never changed: it is taken out before the header is de-identified and
  put back afterwards, byte for byte (and, for metadata, never read at all).
- An object that may carry burned-in text (BurnedInAnnotation YES, ultrasound,
  secondary capture...: :func:`radai.deid.pixels.burned_in_reason`) cannot be made safe
  by header de-identification; the view has no regions to blank (Clean Pixel Data
  Option), so such objects are withheld: :class:`Withheld`.
- Search results are built from the index; the engine sees them as a dataset holding
  the item's attributes plus the patient's and study's identifying attributes from the
  index, so that date shifts and cleaned descriptions match what the same study's
  metadata shows.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
)

from radai.archive.query import ATTRIBUTES, Level
from radai.config import ConfigError, Settings
from radai.deid.engine import DeidentificationRefused, Profile, deidentify
from radai.deid.pixels import burned_in_reason
from radai.deid.pseudonym import PseudonymKey
from radai.deid.table import load_table
from radai.dicomweb.dicomjson import dataset_json
from radai.dicomweb.wado import StoredInstance

#: Pixel Data, Float Pixel Data, Double Float Pixel Data (PS3.3 C.7.6.3).
PIXEL_TAGS = (BaseTag(0x7FE00010), BaseTag(0x7FE00008), BaseTag(0x7FE00009))
#: Values larger than this stay on disk while a header is read.
_DEFER_SIZE = 64 * 1024
#: What the de-identification adds to a search result (PS3.15 E.1.1, PS3.3 C.7.1.1).
_RECORD_KEYS = ("00120062", "00120063", "00280303")
_RETRIEVE_URL = "00081190"
#: Index attributes that identify the patient or the study; the engine needs them to
#: shift dates per patient and to clean descriptions of identifying values.
_IDENTITY_LEVELS = (Level.PATIENT, Level.STUDY)


class Withheld(Exception):
    """An object the view does not send: it may carry burned-in text (the reason says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def key_from_settings(settings: Settings) -> PseudonymKey | None:
    """The configured de-identification key, None when none is configured.

    Raises :class:`ConfigError` naming the setting when one is configured but unusable.
    """
    deid = settings.deid
    try:
        if deid.key_file is not None:
            return PseudonymKey.from_file(deid.key_file)
        if deid.key is not None:
            return PseudonymKey(deid.key.get_secret_value().encode())
    except ValueError as exc:
        name = "deid.key_file" if deid.key_file is not None else "deid.key"
        raise ConfigError(f"invalid setting {name}: {exc}") from None
    return None


@dataclass(frozen=True)
class VendorView:
    """The profile and key every vendor response is de-identified with."""

    profile: Profile
    key: PseudonymKey

    @classmethod
    def from_settings(cls, settings: Settings) -> VendorView | None:
        """The view configured by ``vendor.options`` and the ``[deid]`` key; None without a key."""
        key = key_from_settings(settings)
        if key is None:
            return None
        return cls(profile=Profile.from_names(settings.vendor.options), key=key)

    # --- what may be matched -------------------------------------------------------------

    def shows_unchanged(self, keyword: str) -> bool:
        """Whether the view shows the attribute's stored value as it is (PS3.15 Table E.1-1
        has no row for it, or keeps it under the chosen options).

        Only such attributes may be matching keys: matching on a value the view replaces
        would let a vendor test guesses of the original.
        """
        attr = ATTRIBUTES.get(keyword)
        if attr is None:
            return False
        row = load_table().row_for(attr.tag)
        return row is None or row.action(self.profile.options) == "K"

    # --- files ---------------------------------------------------------------------------

    def _split(self, ds: Dataset, *, keep_deferred: bool) -> tuple[Dataset, dict[BaseTag, Any]]:
        """The de-identified dataset without its pixel data, and the pixel elements taken out."""
        reason = burned_in_reason(ds)
        if reason is not None:
            raise Withheld(reason)
        pixels = {tag: ds.get_item(tag, keep_deferred=keep_deferred) for tag in PIXEL_TAGS if tag in ds}
        for tag in pixels:
            del ds[tag]
        try:
            out = deidentify(ds, profile=self.profile, key=self.key)
        except DeidentificationRefused as exc:
            raise Withheld(str(exc)) from None
        return out, pixels

    def check(self, inst: StoredInstance) -> None:
        """Raise :class:`Withheld` if the instance may carry burned-in text (header read only)."""
        reason = burned_in_reason(read_header(inst))
        if reason is not None:
            raise Withheld(reason)

    def header(self, inst: StoredInstance) -> tuple[Dataset, dict[BaseTag, str]]:
        """The instance's de-identified header, and the VR of each pixel data element it has
        (their values are not read: metadata gives them by reference)."""
        out, pixels = self._split(read_header(inst), keep_deferred=True)
        return out, {tag: pixel_vr(elem, out, inst.transfer_syntax_uid) for tag, elem in pixels.items()}

    def header_only(self, inst: StoredInstance) -> Dataset:
        """The instance's de-identified header (no pixel data)."""
        return self.header(inst)[0]

    def instance(self, inst: StoredInstance, *, native: bool) -> bytes:
        """The de-identified instance as a PS3.10 file, pixel data exactly as stored.

        ``native`` writes it in Explicit VR Little Endian instead of the stored syntax
        (compressed pixel data is then decoded). Raises :class:`Withheld`, or ValueError
        when the stored encoding cannot be turned into the one asked for.
        """
        out, pixels = self._split(dcmread(inst.path), keep_deferred=False)
        for tag, elem in pixels.items():
            out[tag] = elem
        ts = UID(out.file_meta.TransferSyntaxUID)
        buf = io.BytesIO()
        if native and ts != ExplicitVRLittleEndian:
            if ts == ExplicitVRBigEndian:
                raise ValueError("big endian instances are sent in their stored transfer syntax only")
            if ts.is_encapsulated:
                out.decompress(generate_instance_uid=False)
            out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            dcmwrite(buf, out, enforce_file_format=True, implicit_vr=False, little_endian=True)
        else:
            dcmwrite(buf, out, enforce_file_format=True)
        return buf.getvalue()

    # --- search results ------------------------------------------------------------------

    def search_item(self, item: dict[str, Any], identity: Dataset, *, level: Level,
                    service_url: str, threshold: int) -> dict[str, Any]:
        """A QIDO-RS result object (PS3.18 §10.6.3) de-identified.

        Every attribute of ``item`` is given, with its de-identified value or empty when
        the profile removes it; RetrieveURL is rebuilt from the pseudonymous UIDs under
        ``service_url``; Patient Identity Removed, De-identification Method and
        Longitudinal Temporal Information Modified say what was done.
        """
        source = {k: v for k, v in item.items() if k != _RETRIEVE_URL and "BulkDataURI" not in v}
        ds = Dataset.from_json(source)
        for elem in identity:
            if elem.tag not in ds:
                ds.add(DataElement(elem.tag, elem.VR, elem.value))
        out = deidentify(ds, profile=self.profile, key=self.key)
        values = dataset_json(out, bulk_uri=None, threshold=threshold, little_endian=True)
        result: dict[str, Any] = {}
        for key, original in item.items():
            if key == _RETRIEVE_URL:
                result[key] = {"vr": "UR", "Value": [_retrieve_url(out, level, service_url)]}
            else:
                result[key] = values.get(key, {"vr": original.get("vr", "UN")})
        for key in _RECORD_KEYS:
            if key in values:
                result[key] = values[key]
        return dict(sorted(result.items()))


def read_header(inst: StoredInstance) -> Dataset:
    """The instance's dataset with large values (the pixels) left on disk until asked for."""
    deferred = inst.transfer_syntax_uid != str(DeflatedExplicitVRLittleEndian)
    # A deflated file is inflated in memory: its deferred values could not be read again.
    return dcmread(inst.path, defer_size=_DEFER_SIZE if deferred else None)


def pixel_vr(elem: RawDataElement | DataElement, header: Dataset, transfer_syntax: str) -> str:
    """The VR a pixel data element is given in DICOM JSON (PS3.5 §8.2: OB when encapsulated)."""
    if elem.VR and " or " not in elem.VR:
        return str(elem.VR)
    if elem.tag == 0x7FE00008:
        return "OF"
    if elem.tag == 0x7FE00009:
        return "OD"
    if UID(transfer_syntax).is_encapsulated:
        return "OB"
    return "OW" if int(header.get("BitsAllocated", 16) or 16) > 8 else "OB"


def identity_dataset(values: Iterable[tuple[str, Any]]) -> Dataset:
    """A dataset of index attributes (keyword, value); empty values are left out."""
    ds = Dataset()
    for keyword, value in values:
        attr = ATTRIBUTES[keyword]
        if value is None or value == "" or attr.level not in _IDENTITY_LEVELS:
            continue
        ds.add(DataElement(BaseTag(attr.tag), attr.vr, value))
    return ds


def identity_keywords() -> list[str]:
    """The index attributes :func:`identity_dataset` takes: patient and study attributes."""
    return [a.keyword for a in ATTRIBUTES.values()
            if a.level in _IDENTITY_LEVELS and a.column is not None]


def _retrieve_url(ds: Dataset, level: Level, service_url: str) -> str:
    url = f"{service_url}/studies/{ds.get('StudyInstanceUID', '')}"
    if level >= Level.SERIES:
        url += f"/series/{ds.get('SeriesInstanceUID', '')}"
    if level >= Level.IMAGE:
        url += f"/instances/{ds.get('SOPInstanceUID', '')}"
    return url
