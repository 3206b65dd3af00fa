"""Attribute matching over the archive index, shared by C-FIND and QIDO-RS.

Implements the matching types of PS3.4 §C.2.2.2 for the attributes the index holds:
single value, universal (empty value), wildcard (``*`` and ``?``), range (DA, TM, DT:
``a-b``, ``-b``, ``a-``) and list of UID matching. Person names match case-insensitively
(§C.2.2.2.1 allows it and users expect it). Hierarchical levels join upwards, so a
series query may also constrain study and patient attributes (relational queries,
PS3.4 §C.4.1.2.2 and PS3.18 §10.6.1.3).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from radai.archive.models import Instance, Patient, Series, Study


class Level(enum.IntEnum):
    """Query/retrieve levels (PS3.4 §C.3), ordered from the top."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    IMAGE = 3

    @classmethod
    def parse(cls, value: str) -> Level:
        """From a QueryRetrieveLevel value (``INSTANCE`` is accepted for ``IMAGE``)."""
        text = value.strip().upper()
        if text == "INSTANCE":
            return cls.IMAGE
        try:
            return cls[text]
        except KeyError:
            raise QueryError(
                "QueryRetrieveLevel (0008,0052) must be PATIENT, STUDY, SERIES or IMAGE") from None


class QueryError(ValueError):
    """A query that cannot be answered (names the attribute, not patient values)."""


@dataclass(frozen=True)
class Attr:
    """An attribute the index can match and return."""

    keyword: str
    tag: int
    vr: str
    level: Level
    #: Column holding the value; None for values computed per row.
    column: InstrumentedAttribute[Any] | None = None


_ATTRS: tuple[Attr, ...] = (
    Attr("PatientName", 0x00100010, "PN", Level.PATIENT, Patient.patient_name),
    Attr("PatientID", 0x00100020, "LO", Level.PATIENT, Patient.patient_id),
    Attr("IssuerOfPatientID", 0x00100021, "LO", Level.PATIENT, Patient.issuer_of_patient_id),
    Attr("PatientBirthDate", 0x00100030, "DA", Level.PATIENT, Patient.patient_birth_date),
    Attr("PatientSex", 0x00100040, "CS", Level.PATIENT, Patient.patient_sex),
    Attr("NumberOfPatientRelatedStudies", 0x00201200, "IS", Level.PATIENT),
    Attr("NumberOfPatientRelatedSeries", 0x00201202, "IS", Level.PATIENT),
    Attr("NumberOfPatientRelatedInstances", 0x00201204, "IS", Level.PATIENT),
    Attr("StudyInstanceUID", 0x0020000D, "UI", Level.STUDY, Study.study_instance_uid),
    Attr("StudyDate", 0x00080020, "DA", Level.STUDY, Study.study_date),
    Attr("StudyTime", 0x00080030, "TM", Level.STUDY, Study.study_time),
    Attr("AccessionNumber", 0x00080050, "SH", Level.STUDY, Study.accession_number),
    Attr("StudyID", 0x00200010, "SH", Level.STUDY, Study.study_id),
    Attr("StudyDescription", 0x00081030, "LO", Level.STUDY, Study.study_description),
    Attr("ReferringPhysicianName", 0x00080090, "PN", Level.STUDY, Study.referring_physician_name),
    Attr("PatientAge", 0x00101010, "AS", Level.STUDY, Study.patient_age),
    Attr("ModalitiesInStudy", 0x00080061, "CS", Level.STUDY, Study.modalities_in_study),
    Attr("NumberOfStudyRelatedSeries", 0x00201206, "IS", Level.STUDY, Study.number_of_series),
    Attr("NumberOfStudyRelatedInstances", 0x00201208, "IS", Level.STUDY, Study.number_of_instances),
    Attr("SeriesInstanceUID", 0x0020000E, "UI", Level.SERIES, Series.series_instance_uid),
    Attr("Modality", 0x00080060, "CS", Level.SERIES, Series.modality),
    Attr("SeriesNumber", 0x00200011, "IS", Level.SERIES, Series.series_number),
    Attr("SeriesDescription", 0x0008103E, "LO", Level.SERIES, Series.series_description),
    Attr("BodyPartExamined", 0x00180015, "CS", Level.SERIES, Series.body_part_examined),
    Attr("SeriesDate", 0x00080021, "DA", Level.SERIES, Series.series_date),
    Attr("SeriesTime", 0x00080031, "TM", Level.SERIES, Series.series_time),
    Attr("PerformedProcedureStepStartDate", 0x00400244, "DA", Level.SERIES,
         Series.performed_procedure_step_start_date),
    Attr("PerformedProcedureStepStartTime", 0x00400245, "TM", Level.SERIES,
         Series.performed_procedure_step_start_time),
    Attr("InstitutionName", 0x00080080, "LO", Level.SERIES, Series.institution_name),
    Attr("Manufacturer", 0x00080070, "LO", Level.SERIES, Series.manufacturer),
    Attr("ManufacturerModelName", 0x00081090, "LO", Level.SERIES, Series.manufacturer_model_name),
    Attr("StationName", 0x00081010, "SH", Level.SERIES, Series.station_name),
    Attr("NumberOfSeriesRelatedInstances", 0x00201209, "IS", Level.SERIES,
         Series.number_of_instances),
    Attr("SOPInstanceUID", 0x00080018, "UI", Level.IMAGE, Instance.sop_instance_uid),
    Attr("SOPClassUID", 0x00080016, "UI", Level.IMAGE, Instance.sop_class_uid),
    Attr("InstanceNumber", 0x00200013, "IS", Level.IMAGE, Instance.instance_number),
    Attr("Rows", 0x00280010, "US", Level.IMAGE, Instance.rows),
    Attr("Columns", 0x00280011, "US", Level.IMAGE, Instance.columns),
    Attr("BitsAllocated", 0x00280100, "US", Level.IMAGE, Instance.bits_allocated),
    Attr("NumberOfFrames", 0x00280008, "IS", Level.IMAGE, Instance.number_of_frames),
    Attr("ContentDate", 0x00080023, "DA", Level.IMAGE, Instance.content_date),
    Attr("ContentTime", 0x00080033, "TM", Level.IMAGE, Instance.content_time),
)

#: Keyword → attribute, for every attribute the index can match.
ATTRIBUTES: Mapping[str, Attr] = {a.keyword: a for a in _ATTRS}
#: Tag → attribute.
ATTRIBUTES_BY_TAG: Mapping[int, Attr] = {a.tag: a for a in _ATTRS}

#: The unique key of each level (PS3.4 §C.3).
UNIQUE_KEYS = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}

_ENTITY: dict[Level, Any] = {
    Level.PATIENT: Patient, Level.STUDY: Study, Level.SERIES: Series, Level.IMAGE: Instance}
_WILDCARD_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}
_RANGE_VRS = {"DA", "TM", "DT"}


@dataclass(frozen=True)
class Match:
    """One matching key: an attribute and the value it must match (``""`` = universal)."""

    keyword: str
    value: str


def condition(attr: Attr, value: str) -> ColumnElement[bool] | None:
    """The SQL condition for one matching key, or None for universal matching."""
    value = value.strip("\0 ") if attr.vr != "PN" else value.strip("\0")
    if value == "" or value == "*":
        return None
    if attr.column is None:
        raise QueryError(f"{attr.keyword} cannot be used as a matching key")
    col: ColumnElement[Any] = attr.column.expression
    if attr.vr == "UI":
        uids = [u.strip() for u in value.split("\\") if u.strip()]
        return col.in_(uids) if len(uids) > 1 else col == uids[0]
    if attr.vr in _RANGE_VRS and "-" in value:
        return _range(col, value, attr)
    if attr.vr in ("IS", "US"):
        try:
            return col == int(value)
        except ValueError:
            raise QueryError(f"{attr.keyword} must be a number") from None
    if attr.keyword == "ModalitiesInStudy":
        return _modalities(value)
    if attr.vr in _WILDCARD_VRS and ("*" in value or "?" in value):
        return _like(col, value, insensitive=attr.vr == "PN")
    if attr.vr == "PN":
        return func.lower(col) == value.lower()
    if attr.vr in ("DA", "TM", "DT"):
        if attr.vr == "DA" and (len(value) != 8 or not value.isdigit()):
            raise QueryError(f"{attr.keyword} must be a date YYYYMMDD or a range of dates")
        return col.like(value + "%") if attr.vr == "TM" else col == value
    return col == value


def _range(col: ColumnElement[Any], value: str, attr: Attr) -> ColumnElement[bool]:
    low, _, high = value.partition("-")
    low, high = low.strip(), high.strip()
    for part in (low, high):
        if part and not part.replace(".", "").isdigit():
            raise QueryError(f"{attr.keyword} range bounds must be digits")
        if attr.vr == "DA" and part and len(part) != 8:
            raise QueryError(f"{attr.keyword} range bounds must be dates YYYYMMDD")
    conds = [col != ""]
    if low:
        conds.append(col >= low)
    if high:
        # An upper bound includes every value it is a prefix of (TM 0930 includes 093015).
        conds.append(col <= high + "~")
    return and_(*conds)


def _like(col: ColumnElement[Any], value: str, *, insensitive: bool) -> ColumnElement[bool]:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = escaped.replace("*", "%").replace("?", "_")
    if insensitive:
        return func.lower(col).like(pattern.lower(), escape="\\")
    return col.like(pattern, escape="\\")


def _modalities(value: str) -> ColumnElement[bool]:
    # Matches studies with at least one series of any of the listed modalities.
    wanted = [m.strip() for m in value.split("\\") if m.strip()]
    return Study.id.in_(select(Series.study_pk).where(Series.modality.in_(wanted)))


def build(level: Level, matches: Iterable[Match]) -> Select[Any]:
    """A SELECT of the level's entity (and its parents) filtered by ``matches``."""
    entities: list[Any] = [_ENTITY[lvl] for lvl in Level if lvl <= level]
    entities = list(reversed(entities))  # the queried entity first
    stmt = select(*entities)
    if level >= Level.IMAGE:
        stmt = stmt.join(Series, Instance.series_pk == Series.id)
    if level >= Level.SERIES:
        stmt = stmt.join(Study, Series.study_pk == Study.id)
    if level >= Level.STUDY:
        stmt = stmt.join(Patient, Study.patient_pk == Patient.id)
    for m in matches:
        attr = ATTRIBUTES.get(m.keyword)
        if attr is None:
            continue  # not indexed: universal matching, the value comes from the file
        if attr.level > level:
            raise QueryError(f"{m.keyword} is not an attribute of the {level.name} level")
        cond = condition(attr, m.value)
        if cond is not None:
            stmt = stmt.where(cond)
    return stmt.order_by(_ENTITY[level].id)


@dataclass(frozen=True)
class Row:
    """One query result: the entity of the queried level and its parents."""

    level: Level
    patient: Patient
    study: Study | None
    series: Series | None
    instance: Instance | None
    counts: Mapping[str, int]

    def value(self, keyword: str) -> Any:
        """The indexed value of an attribute for this row ("" or None when absent)."""
        attr = ATTRIBUTES[keyword]
        if attr.column is None:
            return self.counts.get(keyword)
        obj = {Level.PATIENT: self.patient, Level.STUDY: self.study,
               Level.SERIES: self.series, Level.IMAGE: self.instance}[attr.level]
        return None if obj is None else getattr(obj, attr.column.key)


def run(session: Session, level: Level, matches: Sequence[Match], *,
        limit: int | None = None, offset: int = 0) -> list[Row]:
    """Run a query and return its rows, in index order."""
    stmt = build(level, matches)
    if offset:
        stmt = stmt.offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = []
    for result in session.execute(stmt):
        objs = list(result)
        by_level = dict(zip(reversed([lvl for lvl in Level if lvl <= level]), objs, strict=True))
        counts = _patient_counts(session, by_level[Level.PATIENT]) if level == Level.PATIENT else {}
        rows.append(Row(level, by_level[Level.PATIENT], by_level.get(Level.STUDY),
                        by_level.get(Level.SERIES), by_level.get(Level.IMAGE), counts))
    return rows


def count(session: Session, level: Level, matches: Sequence[Match]) -> int:
    """How many rows a query matches (before limit and offset)."""
    sub = build(level, matches).order_by(None).subquery()
    return int(session.scalar(select(func.count()).select_from(sub)) or 0)


def _patient_counts(session: Session, patient: Patient) -> dict[str, int]:
    studies, series, instances = session.execute(
        select(func.count(func.distinct(Study.id)), func.coalesce(func.sum(Study.number_of_series), 0),
               func.coalesce(func.sum(Study.number_of_instances), 0))
        .where(Study.patient_pk == patient.id)
    ).one()
    return {"NumberOfPatientRelatedStudies": int(studies),
            "NumberOfPatientRelatedSeries": int(series),
            "NumberOfPatientRelatedInstances": int(instances)}

