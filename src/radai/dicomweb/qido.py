"""QIDO-RS: the Search transaction (PS3.18 §10.6) over radai's archive index.

Matching is the shared matcher :mod:`radai.archive.query` (PS3.4 §C.2.2.2: single
value, universal, wildcard, range and UID list matching); this module turns query
parameters into its :class:`~radai.archive.query.Match` list and its rows into DICOM
JSON with the return attributes of PS3.18 Tables 10.6.3-3 (study), 10.6.3-4 (series)
and 10.6.3-5 (instance).

Where values come from:

- Attributes the index holds are returned from the index at every level.
- At the instance level, ``includefield`` attributes the index does not hold are read
  from the stored file (header only, never the pixels).
- At the study and series levels, ``includefield`` attributes the index does not hold
  are left out (the response then has only what radai can answer for every entity),
  as are the optional Timezone Offset From UTC and Request Attribute Sequence.
- ``includefield=all`` returns every attribute the index holds for the level and
  the levels above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.tag import BaseTag
from sqlalchemy.orm import Session

from radai.archive.query import ATTRIBUTES, Level, Match, QueryError, Row, count, run
from radai.archive.storage import FileStorage
from radai.dicomweb.dicomjson import dataset_json, value_json
from radai.dicomweb.errors import BadRequest

#: Return attributes of a study (PS3.18 Table 10.6.3-3).
STUDY_RETURN_KEYS = (
    "StudyDate", "StudyTime", "AccessionNumber", "InstanceAvailability", "ModalitiesInStudy",
    "ReferringPhysicianName", "RetrieveURL", "PatientName", "PatientID", "PatientBirthDate",
    "PatientSex", "StudyInstanceUID", "StudyID", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
#: Return attributes of a series (PS3.18 Table 10.6.3-4).
SERIES_RETURN_KEYS = (
    "Modality", "SeriesDescription", "RetrieveURL", "SeriesInstanceUID", "SeriesNumber",
    "NumberOfSeriesRelatedInstances", "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
)
#: Return attributes of an instance (PS3.18 Table 10.6.3-5).
INSTANCE_RETURN_KEYS = (
    "SOPClassUID", "SOPInstanceUID", "InstanceAvailability", "RetrieveURL", "InstanceNumber",
    "Rows", "Columns", "BitsAllocated", "NumberOfFrames",
)
#: Query parameters that are not attributes (PS3.18 §8.3.4).
_CONTROL = frozenset({"limit", "offset", "fuzzymatching", "emptyvaluematching", "includefield"})
_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR", "UC"})


@dataclass(frozen=True)
class Scope:
    """The resource searched: its level and the study/series the path names, if any."""

    level: Level
    study: str | None = None
    series: str | None = None

    def return_keys(self) -> tuple[str, ...]:
        """Required return attributes: the level's own, plus the parents' when the path
        does not fix them (PS3.18 §10.6.3.3.2 and §10.6.3.3.3)."""
        if self.level == Level.STUDY:
            return STUDY_RETURN_KEYS
        if self.level == Level.SERIES:
            parent = ("StudyInstanceUID",) if self.study else _without_url(STUDY_RETURN_KEYS)
            return SERIES_RETURN_KEYS + parent
        if self.series:
            parent = ("StudyInstanceUID", "SeriesInstanceUID")
        elif self.study:
            parent = ("StudyInstanceUID", *_without_url(SERIES_RETURN_KEYS))
        else:
            parent = _without_url(SERIES_RETURN_KEYS) + _without_url(STUDY_RETURN_KEYS)
        return INSTANCE_RETURN_KEYS + parent


def _without_url(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in keys if k != "RetrieveURL")


@dataclass(frozen=True)
class SearchRequest:
    """A parsed QIDO-RS request."""

    scope: Scope
    matches: list[Match]
    #: Attributes named by includefield (tags), beyond the required ones.
    include: list[BaseTag] = field(default_factory=list)
    include_all: bool = False
    limit: int | None = None
    offset: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SearchResult:
    """Matching results as DICOM JSON objects, and Warning header texts."""

    items: list[dict[str, Any]]
    warnings: list[str]


def _attribute_tag(name: str) -> BaseTag:
    """The tag of a query attribute given by keyword or as 8 hex digits (PS3.18 §8.3.4.1)."""
    text = name.strip()
    if "." in text:
        raise BadRequest(f"{text}: matching or including attributes inside sequences is not supported")
    if len(text) == 8 and all(c in "0123456789abcdefABCDEF" for c in text):
        tag = BaseTag(int(text, 16))
        if tag.is_private:
            raise BadRequest(f"{text}: private attributes are not supported in queries")
        if keyword_for_tag(tag) == "":
            raise BadRequest(f"{text} is not an attribute of the DICOM data dictionary")
        return tag
    number = tag_for_keyword(text)
    if number is None:
        raise BadRequest(f"{text} is not a query parameter or an attribute keyword")
    return BaseTag(number)


def _flag(name: str, value: str) -> bool:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadRequest(f"{name} must be true or false")


def _count(name: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None
    if number < minimum:
        raise BadRequest(f"{name} must be at least {minimum}")
    return number


def parse_search(params: Sequence[tuple[str, str]], scope: Scope, *, service_url: str) -> SearchRequest:
    """Read the query parameters of a Search transaction (PS3.18 §8.3.4, §10.6.1.2).

    Raises :class:`BadRequest` naming the parameter or attribute that is wrong.
    """
    values: dict[str, list[str]] = {}
    include: list[BaseTag] = []
    include_all = False
    limit: int | None = None
    offset = 0
    notes: list[str] = []
    for name, value in params:
        key = name.strip()
        lower = key.lower()
        if lower == "includefield":
            for item in value.split(","):
                if item.strip().lower() == "all":
                    include_all = True
                elif item.strip():
                    include.append(_attribute_tag(item))
        elif lower == "limit":
            limit = _count("limit", value, 1)
        elif lower == "offset":
            offset = _count("offset", value, 0)
        elif lower == "fuzzymatching":
            if _flag("fuzzymatching", value):
                notes.append(f"299 {service_url}: The fuzzymatching parameter is not supported. "
                             "Only literal matching has been performed.")
        elif lower == "emptyvaluematching":
            if _flag("emptyvaluematching", value):
                notes.append(f"299 {service_url}: The emptyvaluematching parameter is not supported. "
                             "Empty Value Matching has not been performed.")
        else:
            keyword = keyword_for_tag(_attribute_tag(key))
            values.setdefault(keyword, []).append(value)
    matches = _matches(values, scope)
    return SearchRequest(scope, matches, include, include_all, limit, offset, notes)


def _matches(values: dict[str, list[str]], scope: Scope) -> list[Match]:
    matches: list[Match] = []
    for keyword, given in values.items():
        attr = ATTRIBUTES.get(keyword)
        if attr is None:
            if any(v.strip() for v in given):
                raise BadRequest(f"{keyword} cannot be used as a matching key; radai matches on "
                                 "the attributes of its index only")
            continue  # an empty value is universal matching: the same as includefield
        if attr.level > scope.level:
            raise BadRequest(f"{keyword} is not an attribute of the {_level_name(scope.level)} level")
        if attr.vr == "UI":
            # PS3.18 §8.3.4.1: a UID list is comma-separated, or the key is repeated.
            uids = [u.strip() for v in given for u in v.replace(",", "\\").split("\\") if u.strip()]
            matches.append(Match(keyword, "\\".join(uids)))
        elif len(given) > 1:
            raise BadRequest(f"{keyword} is given more than once")
        else:
            matches.append(Match(keyword, given[0]))
    if scope.study:
        matches.append(Match("StudyInstanceUID", scope.study))
    if scope.series:
        matches.append(Match("SeriesInstanceUID", scope.series))
    return matches


def _level_name(level: Level) -> str:
    return "instance" if level == Level.IMAGE else level.name.lower()


def search(session: Session, request: SearchRequest, *, storage: FileStorage, service_url: str,
           max_results: int, bulk_data_threshold: int) -> SearchResult:
    """Run a Search transaction and build its response (PS3.18 §10.6.3).

    At most ``max_results`` results are returned; when the client asked for more (or set
    no limit) and more match, a Warning says how many more can be requested (§8.3.4.4).
    """
    limit = min(request.limit or max_results, max_results)
    try:
        rows = run(session, request.scope.level, request.matches, limit=limit, offset=request.offset)
        notes = list(request.warnings)
        capped = request.limit is None or request.limit > max_results
        if capped and len(rows) == limit:
            more = count(session, request.scope.level, request.matches) - request.offset - len(rows)
            if more > 0:
                notes.append(f"299 {service_url}: There are {more} additional results that can be requested")
    except QueryError as exc:
        raise BadRequest(str(exc)) from None
    keys = _returned_keywords(request)
    file_tags = _file_tags(request)
    items = []
    for row in rows:
        item = _row_json(row, keys, service_url)
        if file_tags and row.instance is not None:
            _add_from_file(item, storage.path(row.instance.path), file_tags, row, service_url,
                           bulk_data_threshold)
        items.append(item)
    return SearchResult(items, notes)


def _returned_keywords(request: SearchRequest) -> list[str]:
    level = request.scope.level
    keys = list(request.scope.return_keys())
    extra = [m.keyword for m in request.matches]
    extra += [keyword_for_tag(t) for t in request.include]
    if request.include_all:
        extra += [a.keyword for a in ATTRIBUTES.values()]
    for keyword in extra:
        attr = ATTRIBUTES.get(keyword)
        # Attributes of lower levels are not returned (PS3.18 §10.6.3.3.1); patient
        # counters exist only for patient-level queries, which QIDO-RS does not have.
        if attr is None or attr.level > level or (attr.column is None):
            continue
        if keyword not in keys:
            keys.append(keyword)
    return keys


def _file_tags(request: SearchRequest) -> list[BaseTag]:
    if request.scope.level != Level.IMAGE:
        return []
    known = {"RetrieveURL", "InstanceAvailability"}
    return [t for t in request.include if keyword_for_tag(t) not in ATTRIBUTES
            and keyword_for_tag(t) not in known]


def _row_json(row: Row, keys: list[str], service_url: str) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for keyword in keys:
        tag = BaseTag(tag_for_keyword(keyword) or 0)
        if keyword == "RetrieveURL":
            value: Any = _retrieve_url(row, service_url)
        elif keyword == "InstanceAvailability":
            value = "ONLINE"  # every stored instance is on local storage (PS3.3 C.4.23.1.1)
        else:
            value = _index_value(row.value(keyword), dictionary_VR(tag))
        item[f"{tag:08X}"] = value_json(tag, value)
    return dict(sorted(item.items()))


def _index_value(value: Any, vr: str) -> Any:
    if isinstance(value, str) and "\\" in value and vr not in _TEXT_VRS:
        return value.split("\\")
    return value


def _retrieve_url(row: Row, service_url: str) -> str:
    url = f"{service_url}/studies/{row.study.study_instance_uid}" if row.study is not None else service_url
    if row.level >= Level.SERIES and row.series is not None:
        url += f"/series/{row.series.series_instance_uid}"
    if row.level >= Level.IMAGE and row.instance is not None:
        url += f"/instances/{row.instance.sop_instance_uid}"
    return url


def _add_from_file(item: dict[str, Any], path: Path, tags: list[BaseTag], row: Row,
                   service_url: str, threshold: int) -> None:
    """Add includefield attributes the index lacks, read from the instance's file."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=list(tags))
    except (OSError, ValueError):
        return  # the file is unreadable: such attributes stay absent, as for other levels
    base = _retrieve_url(row, service_url) + "/bulkdata/"
    found = dataset_json(ds, bulk_uri=lambda p: base + p, threshold=threshold,
                         little_endian=_little_endian(ds))
    wanted = {f"{t:08X}" for t in tags}
    item.update({k: v for k, v in found.items() if k in wanted})
    item_sorted = dict(sorted(item.items()))
    item.clear()
    item.update(item_sorted)


def _little_endian(ds: Any) -> bool:
    meta = getattr(ds, "file_meta", None)
    ts = str(getattr(meta, "TransferSyntaxUID", "")) if meta is not None else ""
    return ts != "1.2.840.10008.1.2.2"
