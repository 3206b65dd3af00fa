"""Query/Retrieve identifiers: from a C-FIND/C-MOVE/C-GET request to the shared matcher and back.

Matching itself is :mod:`radai.archive.query` (shared with QIDO-RS); this module only
turns a request Identifier into matching keys (PS3.4 §C.2.2.1, §C.4.1.1.3.1) and index
rows into response Identifiers (§C.4.1.1.3.2), and picks the instances a retrieve
covers (§C.4.2.2.1, §C.4.3.2.1). Errors name the attribute, never its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from sqlalchemy import select
from sqlalchemy.orm import Session

from radai.archive.models import Study
from radai.archive.query import ATTRIBUTES, ATTRIBUTES_BY_TAG, UNIQUE_KEYS, Level, Match, QueryError, Row, run
from radai.dimse.status import Status

#: Query/Retrieve information models radai provides and the levels each allows (PS3.4 §C.6.1, §C.6.2).
PATIENT_ROOT_LEVELS = (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE)
STUDY_ROOT_LEVELS = (Level.STUDY, Level.SERIES, Level.IMAGE)

#: SOP Class UIDs (PS3.4 §C.6.1.3, §C.6.2.3; PS3.6 Annex A) → levels.
FIND_MODELS: dict[str, tuple[Level, ...]] = {
    "1.2.840.10008.5.1.4.1.2.1.1": PATIENT_ROOT_LEVELS,  # Patient Root Q/R - FIND
    "1.2.840.10008.5.1.4.1.2.2.1": STUDY_ROOT_LEVELS,  # Study Root Q/R - FIND
}
MOVE_MODELS: dict[str, tuple[Level, ...]] = {
    "1.2.840.10008.5.1.4.1.2.1.2": PATIENT_ROOT_LEVELS,  # Patient Root Q/R - MOVE
    "1.2.840.10008.5.1.4.1.2.2.2": STUDY_ROOT_LEVELS,  # Study Root Q/R - MOVE
}
GET_MODELS: dict[str, tuple[Level, ...]] = {
    "1.2.840.10008.5.1.4.1.2.1.3": PATIENT_ROOT_LEVELS,  # Patient Root Q/R - GET
    "1.2.840.10008.5.1.4.1.2.2.3": STUDY_ROOT_LEVELS,  # Study Root Q/R - GET
}

_QUERY_RETRIEVE_LEVEL = 0x00080052
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SPECIFIC_CHARACTER_SET = 0x00080005
_RETRIEVE_AE_TITLE = 0x00080054
_INSTANCE_AVAILABILITY = 0x00080056
#: Elements that steer the query rather than match (PS3.4 §C.4.1.1.3.1, §C.4.1.1.3.2).
_CONTROL_TAGS = frozenset({_QUERY_RETRIEVE_LEVEL, _SPECIFIC_CHARACTER_SET, _RETRIEVE_AE_TITLE,
                           _INSTANCE_AVAILABILITY, 0x00080053, 0x00080201})


class IdentifierError(Exception):
    """A request Identifier radai cannot answer; ``status`` is the DIMSE status to return."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class RequestedKey:
    """A key the requestor asked for: returned in every response, valued from the index."""

    tag: BaseTag
    vr: str


@dataclass(frozen=True)
class FindRequest:
    """A decoded C-FIND Identifier."""

    level: Level
    levels: tuple[Level, ...]
    matches: tuple[Match, ...]
    requested: tuple[RequestedKey, ...]


def _check_complete(identifier: Dataset) -> None:
    """Refuse an Identifier whose elements hold fewer bytes than their headers promise."""
    for tag in list(identifier.keys()):
        elem = identifier.get_item(tag)  # raw: no value is decoded here
        if isinstance(elem, RawDataElement) and elem.length != _UNDEFINED_LENGTH \
                and len(elem.value or b"") != elem.length:
            raise IdentifierError(Status.UNABLE_TO_PROCESS, "the Identifier is truncated")


def _level(identifier: Dataset, levels: Sequence[Level]) -> Level:
    if _QUERY_RETRIEVE_LEVEL not in identifier:
        raise IdentifierError(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                              "QueryRetrieveLevel (0008,0052) is missing")
    try:
        level = Level.parse(str(identifier[_QUERY_RETRIEVE_LEVEL].value or ""))
    except QueryError as exc:
        raise IdentifierError(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(exc)) from None
    if level not in levels:
        raise IdentifierError(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                              "QueryRetrieveLevel (0008,0052) is not a level of this information model")
    return level


def _as_text(elem: DataElement) -> str:
    """A matching key's value as the text the shared matcher takes (``\\`` between values)."""
    value = elem.value
    if value is None or elem.VR in ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


def parse_find(identifier: Dataset, levels: Sequence[Level]) -> FindRequest:
    """Read a C-FIND request Identifier (PS3.4 §C.4.1.1.3.1).

    Keys of levels below the Query/Retrieve Level are refused (hierarchical search,
    §C.4.1.2.2.1); keys the index does not hold match universally and are returned
    empty. Raises :class:`IdentifierError`.
    """
    _check_complete(identifier)
    level = _level(identifier, levels)
    matches: list[Match] = []
    requested: list[RequestedKey] = []
    for tag in list(identifier.keys()):
        if tag in _CONTROL_TAGS or tag.group in (0x0000, 0x0002) or tag.element == 0x0000:
            continue
        try:
            elem = identifier[tag]
        except Exception:  # noqa: BLE001 - an undecodable value
            raise IdentifierError(Status.UNABLE_TO_PROCESS,
                                  f"the value of ({tag.group:04X},{tag.element:04X}) cannot be decoded"
                                  ) from None
        attr = ATTRIBUTES_BY_TAG.get(int(tag))
        if attr is not None and attr.level > level:
            raise IdentifierError(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                                  f"{attr.keyword} is not an attribute of the {level.name} level")
        requested.append(RequestedKey(tag, elem.VR))
        if attr is not None:
            try:
                text = _as_text(elem)
            except Exception:  # noqa: BLE001 - an undecodable value
                raise IdentifierError(Status.UNABLE_TO_PROCESS,
                                      f"the value of {attr.keyword} cannot be decoded") from None
            matches.append(Match(attr.keyword, text))
    return FindRequest(level, tuple(levels), tuple(matches), tuple(requested))


def find(session: Session, request: FindRequest) -> list[Row]:
    """The index rows matching a C-FIND request (raises :class:`IdentifierError` on bad values)."""
    try:
        return run(session, request.level, list(request.matches))
    except QueryError as exc:
        raise IdentifierError(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(exc)) from None


def row_studies(session: Session, rows: Sequence[Row]) -> list[tuple[str, ...]]:
    """The Study Instance UIDs whose data each row discloses, for the audit log.

    A row of the study level or below belongs to its study; a patient-level row shows
    the patient's demographics, which belong to every study of that patient.
    """
    patients = {row.patient.id for row in rows if row.study is None}
    by_patient: dict[int, list[str]] = {}
    if patients:
        for patient_pk, study_uid in session.execute(
                select(Study.patient_pk, Study.study_instance_uid).where(Study.patient_pk.in_(patients))
                .order_by(Study.id)):
            by_patient.setdefault(patient_pk, []).append(study_uid)
    return [(row.study.study_instance_uid,) if row.study is not None
            else tuple(by_patient.get(row.patient.id, ())) for row in rows]


def _value(vr: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if vr in ("IS", "DS"):
        return str(value)
    if vr in ("US", "SS", "UL", "SL"):
        return int(value)
    return value


def response_identifier(row: Row, request: FindRequest, *, retrieve_ae_title: str) -> Dataset:
    """The Identifier of one C-FIND pending response (PS3.4 §C.4.1.1.3.2).

    Holds every requested key (valued from the index, empty where the index has no
    value), the unique keys of the level and the levels above it in the information
    model, Specific Character Set ISO_IR 192, Retrieve AE Title and Instance
    Availability ONLINE.
    """
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = request.level.name
    for key in request.requested:
        attr = ATTRIBUTES_BY_TAG.get(int(key.tag))
        if key.vr == "SQ":
            ds.add_new(key.tag, "SQ", [])
        elif attr is None:
            ds.add_new(key.tag, key.vr, None)
        else:
            ds.add_new(key.tag, attr.vr, _value(attr.vr, row.value(attr.keyword)))
    for level in request.levels:
        if level > request.level:
            break
        keyword = UNIQUE_KEYS[level]
        attr = ATTRIBUTES[keyword]
        if Tag(attr.tag) not in ds:
            ds.add_new(attr.tag, attr.vr, _value(attr.vr, row.value(keyword)))
    ds.RetrieveAETitle = retrieve_ae_title
    ds.InstanceAvailability = "ONLINE"
    return ds


@dataclass(frozen=True)
class RetrieveItem:
    """One instance a C-MOVE or C-GET sends."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    relative_path: str
    study_instance_uid: str


def parse_retrieve(identifier: Dataset, levels: Sequence[Level]) -> tuple[Level, list[Match]]:
    """The level and unique-key matches of a C-MOVE/C-GET Identifier (PS3.4 §C.4.2.2.1).

    The unique key of the Query/Retrieve Level must be present (a UID list is allowed
    below the patient level); unique keys of the levels above narrow the match; other
    keys are ignored. Raises :class:`IdentifierError`.
    """
    _check_complete(identifier)
    level = _level(identifier, levels)
    matches: list[Match] = []
    for lvl in levels:
        if lvl > level:
            break
        keyword = UNIQUE_KEYS[lvl]
        attr = ATTRIBUTES[keyword]
        elem = identifier.get(attr.tag)
        try:
            text = "" if elem is None else _as_text(elem).strip("\0 ")
        except Exception:  # noqa: BLE001 - an undecodable value
            raise IdentifierError(Status.UNABLE_TO_PROCESS,
                                  f"the value of {keyword} cannot be decoded") from None
        if not text:
            if lvl == level:
                raise IdentifierError(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                                      f"{keyword} is required at the {level.name} level")
            continue
        if "*" in text or "?" in text:
            raise IdentifierError(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                                  f"{keyword} must not hold wildcards in a retrieve")
        if lvl == Level.PATIENT and "\\" in text:
            raise IdentifierError(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                                  f"{keyword} must hold a single value")
        matches.append(Match(keyword, text))
    return level, matches


def retrieve_items(session: Session, matches: Sequence[Match]) -> list[RetrieveItem]:
    """Every stored instance below the matched entities, in index order."""
    try:
        rows = run(session, Level.IMAGE, list(matches))
    except QueryError as exc:
        raise IdentifierError(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(exc)) from None
    items = []
    for row in rows:
        inst, study = row.instance, row.study
        assert inst is not None and study is not None
        items.append(RetrieveItem(inst.sop_instance_uid, inst.sop_class_uid,
                                  inst.transfer_syntax_uid, inst.path, study.study_instance_uid))
    return items
