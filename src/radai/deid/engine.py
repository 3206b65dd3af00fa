"""De-identification of one dataset: PS3.15 Annex E Basic Profile, its options, keyed pseudonyms.

:func:`deidentify` applies every row of Table E.1-1 (see :mod:`radai.deid.table`) to the
dataset and to every nested sequence item, and records what was done in Patient
Identity Removed (0012,0062), De-identification Method (0012,0063) and
De-identification Method Code Sequence (0012,0064) (PS3.15 E.1.1, CID 7050).

Choices the standard leaves to the implementation, and the ones made here:

- Combined codes (X/Z, X/D, X/Z/D, Z/D): the least-removing alternative, Z for X/Z and
  D for the others, because radai does not know every IOD's attribute types and Z or D
  keeps the object valid whether the attribute is Type 1, 2 or 3 (E.1.1 allows it).
  Sequences are removed instead, being Type 3 where they occur (an empty Type 3
  sequence is invalid, and a dummy item would still carry the original codes), except
  the Type 2 Acquisition Context Sequence, which is emptied.
- X where the IOD needs the attribute: Responsible Person/Organization of an animal
  patient are emptied, not removed; removing Overlay Data removes its whole overlay
  group.
- X/Z/U*: the sequence is kept and its UIDs are replaced (U*), so references stay
  resolvable; every other nested attribute goes through the table too.
- D: a dummy of the attribute's VR. Identifiers (SH, LO, UC) get a keyed pseudonym of
  the original, UIDs the keyed UID, so that equal values stay equal across files.
  A sequence under D keeps its items, each de-identified by the same table, and any
  free text (ST, LT, UT, PN) inside that no row covers, such as an SR's Text Value,
  is replaced too; under C (Clean Structured Content) that text is cleaned instead.
- C: dates (DA, DT) move by the patient's offset under the Modified Dates option and
  times (TM) stay, as the shift is whole days; text is cleaned by removing every
  identifying value the dataset itself holds (names, IDs, dates, addresses...), and
  names and AE titles, which are nothing but identity, become dummies; a
  sequence is cleaned item by item; Overlay and Curve Data cannot be cleaned and are
  removed.
- Attributes not in the table are kept; sequences not in the table are still walked,
  so nested UIDs (Referenced SOP Instance UID in any sequence) are replaced.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRBigEndian
from pydicom.valuerep import PersonName

from radai.deid.errors import DeidentificationRefused
from radai.deid.options import BASIC_PROFILE_CODE, Option
from radai.deid.pixels import Region, blank_regions, burned_in_reason
from radai.deid.pseudonym import PseudonymKey
from radai.deid.table import ProfileRow, ProfileTable, SafePrivate, load_safe_private, load_table
from radai.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = ["DeidentificationRefused", "Profile", "deidentify"]

_DATE_OPTIONS = (Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES)
_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "CS", "AE", "UR"})
#: Keyed pseudonyms are 16 characters (80 bits of the HMAC), which fits SH, LO and UC.
_PSEUDONYM_VRS = frozenset({"SH", "LO", "UC"})
_FREE_TEXT_VRS = frozenset({"ST", "LT", "UT", "PN"})
_NUMBER_VRS = frozenset({"DS", "IS", "FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"})
_BYTES_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
#: Fixed dummies (PS3.15 E.1.1 "D": a non-zero length value consistent with the VR).
_DUMMY: dict[str, Any] = {
    "PN": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "CS": "ANONYMIZED",
    "AE": "ANONYMIZED",
    "UR": "urn:x-radai:anonymized",
    "AS": "000D",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AT": 0,
}
#: Sequences that are Type 2 where they occur: Acquisition Context Sequence (PS3.3 C.7.6.14).
_TYPE_2_SEQUENCES = frozenset({0x00400555})
#: Responsible Person and Organization are Type 2C for an animal patient (PS3.3 C.7.1.1):
#: there the Basic Profile's X becomes Z, as E.1.1 allows to keep the IOD valid.
_ANIMAL_TYPE_2C = frozenset({0x00102297, 0x00102299})
#: Values shorter than this are not searched for in free text: "M", "1", "CT" would
#: remove far more than identity.
_MIN_SCRUB_LENGTH = 3
#: File Meta Information that names the sending system (PS3.10 7.1).
_META_IDENTIFYING = (
    "SourceApplicationEntityTitle",
    "SendingApplicationEntityTitle",
    "ReceivingApplicationEntityTitle",
    "PrivateInformationCreatorUID",
    "PrivateInformation",
)


@dataclass(frozen=True)
class Profile:
    """What to apply: the Basic Profile, the chosen options, and the regions to blank, if any.

    Giving ``pixel_regions`` is the Clean Pixel Data Option (PS3.15 E.3.1): objects that
    carry or may carry burned-in text are blanked in those regions instead of refused.
    """

    options: frozenset[Option] = frozenset()
    pixel_regions: tuple[Region, ...] = ()

    def __post_init__(self) -> None:
        if all(o in self.options for o in _DATE_OPTIONS):
            raise ValueError(
                "the Full Dates and Modified Dates options of Retain Longitudinal Temporal "
                "Information exclude each other (PS3.15 E.3.6)"
            )
        if Option.CLEAN_PIXEL_DATA in self.options:
            raise ValueError("Clean Pixel Data is chosen by giving the pixel regions to blank")

    @classmethod
    def from_names(cls, names: Iterable[str], pixel_regions: Iterable[Region] = ()) -> Profile:
        """A profile from option names as on the command line (e.g. ``retain-uids``)."""
        return cls(options=frozenset(Option.from_name(n) for n in names), pixel_regions=tuple(pixel_regions))


@dataclass
class _Run:
    """State of one dataset's de-identification."""

    profile: Profile
    key: PseudonymKey
    table: ProfileTable
    safe_private: dict[tuple[int, str, int], SafePrivate]
    shift_days: int
    scrub: list[str] = field(default_factory=list)
    #: Inside a sequence under D ("dummy") or C ("clean"): what happens to free text.
    free_text: str | None = None
    dates_shifted: bool = False

    def action(self, row: ProfileRow) -> str:
        return row.action(self.profile.options)


def deidentify(ds: Dataset, *, profile: Profile, key: PseudonymKey) -> Dataset:
    """A de-identified copy of ``ds`` (PS3.15 Annex E, Basic Application Level Confidentiality Profile).

    The same dataset, profile and key always give the same result, so UIDs and
    references between instances stay consistent across files, runs and machines.
    Raises :class:`DeidentificationRefused` for an object that may carry burned-in
    text (BurnedInAnnotation YES, ultrasound, secondary capture...) unless
    ``profile.pixel_regions`` says where to blank it.
    """
    reason = burned_in_reason(ds)
    if reason is not None and not profile.pixel_regions:
        raise DeidentificationRefused(f"{reason}; give the regions to blank (Clean Pixel Data Option)")
    meta = getattr(ds, "file_meta", None)
    if reason is not None and meta is not None and meta.get("TransferSyntaxUID") == ExplicitVRBigEndian:
        # pydicom cannot re-encode big-endian pixel data, and the syntax is retired (PS3.5 A.3).
        raise DeidentificationRefused(
            f"{reason}; its pixels are in the retired Explicit VR Big Endian "
            "transfer syntax, which radai cannot blank"
        )
    out = copy.deepcopy(ds)
    run = _Run(
        profile=profile,
        key=key,
        table=load_table(),
        safe_private=load_safe_private(),
        shift_days=key.date_shift_days(_patient_identity(ds)),
    )
    run.scrub = _identifying_values(ds, run)
    _walk(out, run)
    if reason is not None:
        blank_regions(out, profile.pixel_regions)
    _record(out, run, pixels_cleaned=reason is not None)
    _fix_file_meta(out)
    return out


def _patient_identity(ds: Dataset) -> str:
    """What makes two datasets "the same patient" for the date shift.

    Patient ID with its issuer; without an ID, name and birth date; without those,
    the study, so that one study at least keeps its intervals.
    """
    pid = str(ds.get("PatientID", "") or "").strip()
    if pid:
        return "id\x1f" + pid + "\x1f" + str(ds.get("IssuerOfPatientID", "") or "").strip()
    name = str(ds.get("PatientName", "") or "").strip()
    birth = str(ds.get("PatientBirthDate", "") or "").strip()
    if name or birth:
        return "name\x1f" + name + "\x1f" + birth
    return "study\x1f" + str(ds.get("StudyInstanceUID", "") or "")


# --- walking the dataset ------------------------------------------------------------


def _walk(ds: Dataset, run: _Run) -> None:
    private_kept = _private_to_keep(ds, run)
    for tag in list(ds.keys()):
        elem = ds[tag]
        if tag.is_private:
            if tag not in private_kept:
                del ds[tag]
            elif elem.VR == "SQ":
                _walk_items(elem, run)
            continue
        if tag.element == 0:
            del ds[tag]  # group lengths are retired (PS3.5 7.2) and would be wrong after edits
            continue
        row = run.table.row_for(tag)
        if row is None:
            if elem.VR == "SQ":
                _walk_items(elem, run)
            elif run.free_text and elem.VR in _FREE_TEXT_VRS and elem.value:
                _free_text(elem, run)
            continue
        _apply(ds, elem, run.action(row), run)


def _walk_items(elem: DataElement, run: _Run, free_text: str | None = None) -> None:
    """De-identify each item; ``free_text`` says what becomes of text no row covers inside."""
    saved = run.free_text
    if free_text is not None and saved != "dummy":  # inside a dummied sequence nothing is cleaned back
        run.free_text = free_text
    try:
        for item in elem.value or []:
            _walk(item, run)
    finally:
        run.free_text = saved


def _free_text(elem: DataElement, run: _Run) -> None:
    """Text inside a sequence under D or C that the table has no row for (e.g. SR Text Value).

    Under D (the Basic Profile's Content Sequence) it is replaced; under C (Clean
    Structured Content) it is cleaned like a descriptor.
    """
    if run.free_text == "dummy" or elem.VR == "PN":
        elem.value = _DUMMY[elem.VR]
    else:
        elem.value = _map_values(elem.value, lambda v: _scrub(v, run.scrub))


def _private_to_keep(ds: Dataset, run: _Run) -> set[int]:
    """Private tags kept by the Retain Safe Private Option (PS3.15 E.3.10), creators included."""
    if Option.RETAIN_SAFE_PRIVATE not in run.profile.options:
        return set()
    creators: dict[tuple[int, int], str] = {}
    for elem in ds:
        if elem.tag.is_private_creator:
            creators[(elem.tag.group, elem.tag.element)] = str(elem.value).strip()
    keep: set[int] = set()
    for elem in ds:
        tag = elem.tag
        if not tag.is_private or tag.is_private_creator or tag.element < 0x1000:
            continue
        creator = creators.get((tag.group, tag.element >> 8))
        safe = run.safe_private.get((tag.group, creator or "", tag.element & 0xFF))
        if safe is not None and (safe.vr == elem.VR or elem.VR == "UN"):
            keep.add(int(tag))
            keep.add((tag.group << 16) | (tag.element >> 8))
    return keep


def _apply(ds: Dataset, elem: DataElement, action: str, run: _Run) -> None:
    vr = elem.VR
    if action in ("Z/D", "X/D", "X/Z/D"):
        action = "X" if vr == "SQ" and action != "Z/D" else "D"
    elif action == "X/Z":
        # An empty sequence breaks the "one or more items" rule of a Type 3 sequence; only
        # the Type 2 ones are kept empty.
        action = "Z" if vr != "SQ" or int(elem.tag) in _TYPE_2_SEQUENCES else "X"
    elif action == "X/Z/U*":
        action = "U"
    if action == "X" and int(elem.tag) in _ANIMAL_TYPE_2C and _is_animal(ds):
        action = "Z"
    if action == "X":
        _remove(ds, elem)
    elif action == "Z":
        elem.value = [] if vr == "SQ" else (b"" if vr in _BYTES_VRS else None)
    elif action == "K":
        if vr == "SQ":
            _walk_items(elem, run)
    elif action == "U":
        _replace_uids(elem, run)
    elif action == "D":
        _dummy(elem, run)
    elif action == "C":
        _clean(ds, elem, run)
    else:  # pragma: no cover - the table loader refuses unknown codes
        raise ValueError(f"unknown action code for {elem.keyword or elem.tag}")


def _remove(ds: Dataset, elem: DataElement) -> None:
    tag = elem.tag
    if tag.group & 0xFF00 == 0x6000 and tag.element == 0x3000:
        # Without its Overlay Data the rest of the overlay plane is invalid (PS3.3 C.9.2,
        # Type 1): the whole repeating group goes.
        for other in [e.tag for e in ds if e.tag.group == tag.group]:
            del ds[other]
    else:
        del ds[tag]


def _is_animal(ds: Dataset) -> bool:
    return "PatientSpeciesDescription" in ds or "PatientSpeciesCodeSequence" in ds


def _replace_uids(elem: DataElement, run: _Run) -> None:
    if elem.VR == "SQ":
        _walk_items(elem, run)
    elif elem.VR == "UI":
        if elem.value:
            elem.value = _map_values(elem.value, run.key.uid)
    else:
        elem.value = None


def _map_values(value: Any, func: Any) -> Any:
    if isinstance(value, (list, MultiValue)):
        return [func(str(v)) if str(v) else v for v in value]
    return func(str(value))


def _dummy(elem: DataElement, run: _Run) -> None:
    vr = elem.VR
    if vr == "SQ":
        _walk_items(elem, run, "dummy")
    elif vr == "UI":
        elem.value = _map_values(elem.value, run.key.uid) if elem.value else run.key.uid(str(elem.tag))
    elif vr in _PSEUDONYM_VRS:
        keyword = elem.keyword or str(elem.tag)
        original = "\\".join(str(v) for v in _as_list(elem.value))
        elem.value = run.key.identifier(keyword, original)
    elif vr in _NUMBER_VRS:
        elem.value = "0" if vr in ("DS", "IS") else 0
    elif vr in _BYTES_VRS:
        elem.value = b"\x00\x00"
    else:
        elem.value = _DUMMY[vr]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, MultiValue)):
        return list(value)
    return [value]


# --- cleaning -----------------------------------------------------------------------


def _clean(ds: Dataset, elem: DataElement, run: _Run) -> None:
    vr = elem.VR
    if vr == "SQ":
        _walk_items(elem, run, "clean")
    elif vr in ("DA", "DT"):
        if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in run.profile.options:
            elem.value = (
                _map_values(elem.value, lambda v: _shift(v, vr, run.shift_days)) if elem.value else None
            )
            run.dates_shifted = True
        else:
            _dummy(elem, run)
    elif vr == "TM":
        pass  # the shift is whole days, so times of day keep the intervals as they are
    elif vr == "UI":
        _replace_uids(elem, run)
    elif vr in ("PN", "AE"):
        # A name or an AE title is identity itself: nothing is left once it is cleaned.
        elem.value = _DUMMY[vr] if elem.value else None
    elif vr in _TEXT_VRS:
        if elem.value:
            elem.value = _map_values(elem.value, lambda v: _scrub(v, run.scrub))
    elif vr in _BYTES_VRS:
        # Overlay and Curve Data (Clean Graphics): bitmaps and curves cannot be cleaned
        # of text reliably, so they go.
        del ds[elem.tag]


def _shift(value: str, vr: str, days: int) -> str:
    """A DA or DT value moved by ``days``, to the same precision; empty if it is no valid date."""
    text = value.strip()
    digits = text[:8]
    try:
        day = dt.date(int(digits[:4]), int(digits[4:6] or 1), int(digits[6:8] or 1))
    except ValueError:
        return ""
    moved = (day + dt.timedelta(days=days)).strftime("%Y%m%d")[: len(digits)]
    return moved + (text[8:] if vr == "DT" else "")


def _scrub(text: str, values: list[str]) -> str:
    """``text`` without any of ``values`` (case-insensitive), spaces tidied."""
    cleaned = text
    for value in values:
        cleaned = re.sub(re.escape(value), "", cleaned, flags=re.IGNORECASE)
    return re.sub(r"\s{2,}", " ", cleaned).strip()


def _identifying_values(ds: Dataset, run: _Run) -> list[str]:
    """Every value the profile removes or replaces, in the forms free text may hold it.

    These are searched for and removed from the attributes that the chosen options
    keep after cleaning (descriptors, structured content, graphics).
    """
    found: set[str] = set()
    for elem in _iter_elements(ds):
        if elem.tag.is_private or elem.VR in ("SQ", "UI") or elem.VR in _BYTES_VRS:
            continue
        row = run.table.row_for(elem.tag)
        if row is None or run.action(row) in ("K", "C"):
            continue
        for value in _as_list(elem.value):
            found.update(_forms(value, elem.VR))
    return sorted((v for v in found if len(v) >= _MIN_SCRUB_LENGTH), key=len, reverse=True)


def _forms(value: Any, vr: str) -> set[str]:
    text = str(value).strip()
    if not text:
        return set()
    forms = {text}
    if vr == "PN":
        name = PersonName(text)
        forms.update(p.strip() for p in (name.family_name, name.given_name, name.middle_name) if p)
        forms.add(" ".join(p for p in (name.given_name, name.family_name) if p))
    if vr in ("DA", "DT") and len(text) >= 8 and text[:8].isdigit():
        y, m, d = text[:4], text[4:6], text[6:8]
        forms.update({f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}", text[:8]})
    return forms


def _iter_elements(ds: Dataset) -> Iterable[DataElement]:
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _iter_elements(item)


# --- what was done --------------------------------------------------------------------


def _record(ds: Dataset, run: _Run, *, pixels_cleaned: bool) -> None:
    """Patient Identity Removed, De-identification Method and its codes (PS3.15 E.1.1, CID 7050)."""
    options = sorted(run.profile.options, key=lambda o: o.code.value)
    codes = [BASIC_PROFILE_CODE, *(o.code for o in options)]
    if pixels_cleaned:
        codes.append(Option.CLEAN_PIXEL_DATA.code)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [
        f"PS3.15 {run.table.edition} Table E.1-1 by radai",
        *(c.meaning[:64] for c in codes),
    ]
    items = []
    for code in codes:
        item = Dataset()
        item.CodeValue = code.value
        item.CodingSchemeDesignator = code.scheme_designator
        item.CodeMeaning = code.meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    if Option.RETAIN_LONGITUDINAL_FULL_DATES in run.profile.options:
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    elif run.dates_shifted:
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    else:
        ds.LongitudinalTemporalInformationModified = "REMOVED"


def _fix_file_meta(ds: Dataset) -> None:
    """Keep the File Meta Information consistent with the new dataset (PS3.10 7.1)."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    for keyword in _META_IDENTIFYING:
        if keyword in meta:
            delattr(meta, keyword)
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = UID(str(ds.SOPInstanceUID))
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = UID(str(ds.SOPClassUID))
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
