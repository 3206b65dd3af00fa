"""The DICOM JSON Model (PS3.18 Annex F) with bulk data given by reference.

pydicom encodes each element (``DataElement.to_json_dict``); this module walks the
dataset itself so that every large binary value gets a ``BulkDataURI`` naming its
place in the dataset (``7FE00010``, or ``00540016/0/00181072`` inside a sequence),
which :func:`find_element` resolves again for the bulk data route. Large values are
recognised from the raw element, before they are read, so metadata of a big image
never loads its pixels. Binary values are given in little endian whatever the stored
byte order (PS3.18 §F.2.7: Explicit VR Little Endian encoding).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

#: Value representations whose values are bytes (PS3.5 Table 6.2-1).
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
#: Bytes per word of the binary VRs that have a byte order.
_WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
PIXEL_DATA = BaseTag(0x7FE00010)
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PATH_RE = re.compile(r"^[0-9A-Fa-f]{8}(/\d{1,6}/[0-9A-Fa-f]{8})*$")

#: Called with a bulk data path; returns the BulkDataURI for it.
BulkUri = Callable[[str], str]


def _raw_vr(ds: Dataset, tag: BaseTag, raw: RawDataElement) -> str:
    vr = raw.VR
    if vr is None:  # implicit VR: the dictionary's
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return "UN"
    if " or " in vr:
        if tag == PIXEL_DATA:
            if raw.length == _UNDEFINED_LENGTH:
                return "OB"
            return "OW" if int(ds.get("BitsAllocated", 16) or 16) > 8 else "OB"
        return "OW" if "OW" in vr else vr.split(" or ")[0]
    return str(vr)


def to_little_endian(value: bytes, vr: str, *, little_endian: bool) -> bytes:
    """A binary value in little endian (values stored big endian are byte-swapped by word)."""
    word = _WORD_SIZE.get(vr, 1)
    if little_endian or word == 1 or len(value) % word:
        return value
    return np.frombuffer(value, dtype=f">u{word}").astype(f"<u{word}").tobytes()


def dataset_json(ds: Dataset, *, bulk_uri: BulkUri | None, threshold: int,
                 little_endian: bool, prefix: str = "") -> dict[str, Any]:
    """A dataset as a DICOM JSON object (PS3.18 §F.2), large binary values by reference.

    Group lengths and File Meta Information elements are left out (PS3.18 §F.2.1.1).
    ``bulk_uri`` None gives every binary value inline.
    """
    out: dict[str, Any] = {}
    for tag in sorted(ds.keys()):
        if tag.group <= 0x0002 or tag.element == 0:
            continue
        key = f"{tag:08X}"
        path = f"{prefix}{key}"
        raw = ds.get_item(tag)
        if raw is None:
            continue
        if isinstance(raw, RawDataElement):
            vr = _raw_vr(ds, tag, raw)
            big = raw.length == _UNDEFINED_LENGTH or raw.length > threshold
            if vr in BINARY_VRS and big and bulk_uri is not None:
                # Known from the element's header alone: its value is never read.
                out[key] = {"vr": vr, "BulkDataURI": bulk_uri(path)}
                continue
        elem = ds[tag]
        out[key] = element_json(elem, bulk_uri=bulk_uri, threshold=threshold,
                                little_endian=little_endian, path=path)
    return out


def element_json(elem: DataElement, *, bulk_uri: BulkUri | None, threshold: int,
                 little_endian: bool, path: str) -> dict[str, Any]:
    """One element as DICOM JSON (PS3.18 §F.2.2 - §F.2.7)."""
    vr = str(elem.VR)
    if vr == "SQ":
        items = [dataset_json(item, bulk_uri=bulk_uri, threshold=threshold,
                              little_endian=little_endian, prefix=f"{path}/{i}/")
                 for i, item in enumerate(elem.value or [])]
        return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
    if vr in BINARY_VRS or " or " in vr:
        if " or " in vr:
            vr = "OW" if "OW" in vr else vr.split(" or ")[0]
        if elem.is_empty:
            return {"vr": vr}
        if bulk_uri is not None and (elem.is_undefined_length or len(elem.value) > threshold):
            return {"vr": vr, "BulkDataURI": bulk_uri(path)}
        value = to_little_endian(bytes(elem.value), vr, little_endian=little_endian)
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}
    return elem.to_json_dict(None, 0)


def attribute_json(keyword: str, value: Any) -> tuple[str, dict[str, Any]]:
    """An attribute given by keyword and Python value, as a DICOM JSON member.

    ``None`` or ``""`` gives the attribute without a value (PS3.18 §F.2.5).
    """
    number = tag_for_keyword(keyword)
    if number is None:
        raise ValueError(f"{keyword} is not a DICOM keyword")
    tag = Tag(number)
    return f"{tag:08X}", value_json(tag, value)


def value_json(tag: BaseTag, value: Any) -> dict[str, Any]:
    """The DICOM JSON of an attribute with a value from the index or the service."""
    vr = dictionary_VR(tag)
    if value == "" or value is None:
        return {"vr": vr}
    elem = DataElement(tag, vr, value, validation_mode=pydicom_config.IGNORE)
    return elem.to_json_dict(None, 0)


def parse_bulk_path(path: str) -> list[tuple[BaseTag, int | None]]:
    """Split a bulk data path (``7FE00010`` or ``00540016/0/00181072``) into steps.

    Each step is a tag and, except for the last, the index of a sequence item.
    Raises ValueError for a malformed path.
    """
    if not _PATH_RE.match(path):
        raise ValueError("malformed bulk data path")
    parts = path.split("/")
    steps: list[tuple[BaseTag, int | None]] = []
    for i in range(0, len(parts), 2):
        index = int(parts[i + 1]) if i + 1 < len(parts) else None
        steps.append((BaseTag(int(parts[i], 16)), index))
    return steps


def find_element(ds: Dataset, path: str) -> DataElement | None:
    """The element a bulk data path names, or None if there is none there."""
    try:
        steps = parse_bulk_path(path)
    except ValueError:
        return None
    current = ds
    for tag, index in steps:
        if tag not in current:
            return None
        elem = current[tag]
        if index is None:
            return elem
        if elem.VR != "SQ" or not 0 <= index < len(elem.value):
            return None
        current = elem.value[index]
    return None
