"""A dataset holding every attribute of PS3.15 Table E.1-1, made from the vendored table itself.

Each attribute gets a valid value of its VR that is unique to its tag, so that a byte
scan of the output can tell which original value survived. Sequences get one item
holding a name, a date, a UID and an ID, so nested processing is exercised too.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from radai.deid.table import ProfileRow, load_table

_TAG = re.compile(r"^\(([0-9A-F]{4}),([0-9A-F]{4})\)$")
#: Rows newer than pydicom's dictionary: their VR from PS3.6, by name.
_NEWER_VRS = {
    "Sequence": "SQ",
    "DateTime": "DT",
    "Display URI": "UR",
    "Name to Use": "LT",
}
PATIENT_DATE = "20190315"


def row_tag(row: ProfileRow) -> int | None:
    match = _TAG.match(row.tag)
    return int(match.group(1) + match.group(2), 16) if match else None


def row_vr(row: ProfileRow, tag: int) -> str:
    try:
        return dictionary_VR(tag).split(" ")[0]
    except KeyError:
        for word, vr in _NEWER_VRS.items():
            if row.name.endswith(word) or row.name == word:
                return vr
        return "LO"


def marker(tag: int) -> str:
    """The identifying text planted in attribute ``tag``."""
    return f"S{tag:08X}"


def uid_for(tag: int) -> str:
    return f"1.2.826.0.1.3680043.10.1042.{tag}"


#: The planted Patient ID; every longer text also mentions it, as free text often does.
PATIENT_ID = marker(0x00100020)


def date_for(index: int) -> str:
    """A date unique to the attribute's place in the table (three days apart, from 2000)."""
    return (dt.date(2000, 1, 1) + dt.timedelta(days=3 * index)).strftime("%Y%m%d")


def value_for(vr: str, tag: int, index: int, *, mention_patient: bool = True) -> object:
    text = marker(tag)
    long_text = f"{text} of patient {PATIENT_ID}" if mention_patient else text
    values: dict[str, object] = {
        "AE": text,
        "CS": text,
        "SH": text,
        "LO": long_text,
        "UC": long_text,
        "ST": long_text,
        "LT": long_text,
        "UT": long_text,
        "UR": f"http://example.org/{text}",
        "PN": f"Fam{text}^Giv{text}",
        "DA": date_for(index),
        "TM": "101112",
        "DT": f"{date_for(index)}101112",
        "UI": uid_for(tag),
        "AS": "045Y",
        "DS": "1.5",
        "IS": "7",
        "US": 7,
        "SS": 7,
        "UL": 7,
        "SL": 7,
        "FL": 1.5,
        "FD": 1.5,
        "OB": text.encode() + b"\x00",
        "OW": text.encode() + b"\x00",
        "UN": text.encode() + b"\x00",
    }
    return values[vr]


NESTED_NAME = "NestedFamily^NestedGiven"
NESTED_UID = "1.2.826.0.1.3680043.10.1042.99.1"
NESTED_ID = "NESTEDID77"


def nested_item() -> Dataset:
    item = Dataset()
    item.PersonName = NESTED_NAME  # (0040,A123) D
    item.Date = PATIENT_DATE  # (0040,A121) D
    item.ReferencedSOPInstanceUID = NESTED_UID  # (0008,1155) U
    item.ReferencedSOPClassUID = CTImageStorage  # not in the table: kept
    item.PatientID = NESTED_ID  # (0010,0020) Z/D
    return item


@dataclass
class Planted:
    """What the synthetic dataset holds: tag -> (row, VR, value)."""

    rows: dict[int, tuple[ProfileRow, str, object]]


def every_attribute_dataset() -> tuple[Dataset, Planted]:
    """A CT-like dataset with every concrete-tag row of Table E.1-1, plus overlay, curve and private data."""
    ds = Dataset()
    planted: dict[int, tuple[ProfileRow, str, object]] = {}
    for index, row in enumerate(load_table().rows):
        tag = row_tag(row)
        if tag is None or tag >> 16 in (0x0000, 0x0002, 0x0004) or tag == 0xFFFCFFFC:
            continue  # command, file meta and directory records, padding: not dataset attributes
        vr = row_vr(row, tag)
        value: object = (
            Sequence([nested_item()])
            if vr == "SQ"
            else value_for(vr, tag, index, mention_patient="K" not in row.options.values())
        )
        if tag == 0x00100020:
            value = PATIENT_ID
        ds.add_new(tag, vr, value)
        planted[tag] = (row, vr, value)
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.SpecificCharacterSet = "ISO_IR 100"
    # Repeating groups and private attributes (rows without a single tag).
    ds.add_new(0x60004000, "LT", f"Overlay note S60004000 {PATIENT_ID}")
    ds.add_new(0x60003000, "OW", b"S60003000\x00\x00\x00")
    ds.add_new(0x50000030, "SH", "S50000030")
    ds.add_new(0x00290010, "LO", "ACME PRIVATE")
    ds.add_new(0x00291001, "LO", "S00291001")
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019100C, "IS", "1000")  # B value: a safe private attribute (PS3.15 E.3.10-1)
    ds.add_new(0x00191010, "LO", "S00191010")  # same creator, not on the safe list
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = str(ds.SOPInstanceUID)
    meta.SourceApplicationEntityTitle = "SRCAE77"
    ds.file_meta = meta
    return ds, Planted(planted)
