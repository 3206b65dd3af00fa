"""STOW-RS: the Store transaction (PS3.18 §10.5) for PS3.10 instances.

Every part goes through :meth:`radai.archive.service.Archive.store`, the path all
receivers share, which refuses what must not be stored (a :class:`Rejection` whose
reason is the FailureReason of PS3.18 Table I.2-2) and leaves nothing half-stored.
The response is the Store Instances Response Module (PS3.18 §10.5.3, Table 10.5.3-1)
in DICOM JSON.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydicom import dcmread
from pydicom.tag import BaseTag

from radai.archive.parse import Rejection, RejectReason, is_valid_uid
from radai.archive.service import Archive
from radai.dicomweb.dicomjson import value_json
from radai.dicomweb.multipart import ReceivedPart
from radai.logs import uid_ref

log = logging.getLogger(__name__)

RETRIEVE_URL = BaseTag(0x00081190)
FAILED_SOP_SEQUENCE = BaseTag(0x00081198)
REFERENCED_SOP_SEQUENCE = BaseTag(0x00081199)
REFERENCED_SOP_CLASS_UID = BaseTag(0x00081150)
REFERENCED_SOP_INSTANCE_UID = BaseTag(0x00081155)
FAILURE_REASON = BaseTag(0x00081197)

#: Parts stored at the same time, so that the indexer commits them together.
_PARALLEL_PARTS = 4


@dataclass(frozen=True)
class PartOutcome:
    """What happened to one part: stored (``failure`` None) or refused, and why."""

    sop_class_uid: str | None
    sop_instance_uid: str | None
    study_instance_uid: str | None
    series_instance_uid: str | None
    failure: int | None = None


@dataclass(frozen=True)
class StoreResponse:
    """The HTTP status and DICOM JSON body of a Store transaction."""

    status: int
    body: dict[str, Any]
    #: Study Instance UIDs of the instances stored.
    studies: list[str]


@dataclass(frozen=True)
class _Identity:
    sop_class_uid: str | None
    sop_instance_uid: str | None
    study_instance_uid: str | None


_IDENTITY_TAGS = [0x00080016, 0x00080018, 0x0020000D]


def identify(data: bytes) -> _Identity:
    """The SOP Class, SOP Instance and Study Instance UIDs of a part, where readable and valid.

    Only for the response and the study check; the archive does its own full check.
    """
    try:
        has_header = data[128:132] == b"DICM"
        ds = dcmread(io.BytesIO(data), force=not has_header, stop_before_pixels=True,
                     specific_tags=list(_IDENTITY_TAGS))
        values = [str(ds.get(kw, "") or "").strip("\0 ")
                  for kw in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID")]
    except Exception:  # noqa: BLE001 - unreadable input: the archive reports why
        return _Identity(None, None, None)
    cls, inst, study = (v if v and is_valid_uid(v) else None for v in values)
    return _Identity(cls, inst, study)


def store_part(archive: Archive, part: ReceivedPart, *, study: str | None) -> PartOutcome:
    """Store one part; a refusal becomes a failed outcome with its FailureReason."""
    data = part.read()
    who = identify(data)
    if study is not None and who.study_instance_uid is not None and who.study_instance_uid != study:
        # PS3.18 §10.5.1: with a study in the path, every instance must belong to it.
        log.warning("STOW-RS part %s refused: Study Instance UID differs from the request's",
                    uid_ref(who.sop_instance_uid or ""))
        return PartOutcome(who.sop_class_uid, who.sop_instance_uid, who.study_instance_uid, None,
                           int(RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS))
    try:
        stored = archive.store(data, source="stow")
    except Rejection as rej:
        return PartOutcome(who.sop_class_uid, who.sop_instance_uid, who.study_instance_uid, None,
                           int(rej.reason))
    return PartOutcome(stored.sop_class_uid, stored.sop_instance_uid, stored.study_instance_uid,
                       stored.series_instance_uid)


def store_parts(archive: Archive, parts: Sequence[ReceivedPart], *, study: str | None,
                service_url: str) -> StoreResponse:
    """Store every part and build the Store Instances Response (PS3.18 §10.5.3).

    HTTP 200 when all were stored, 202 when some were refused, 409 when none was
    (PS3.18 Table 10.5.3-2). Re-sent instances count as stored (the archive keeps the
    first copy).
    """
    with ThreadPoolExecutor(max_workers=min(_PARALLEL_PARTS, len(parts)) or 1,
                            thread_name_prefix="stow") as pool:
        outcomes = list(pool.map(lambda p: store_part(archive, p, study=study), parts))
    return build_response(outcomes, study=study, service_url=service_url)


def build_response(outcomes: Sequence[PartOutcome], *, study: str | None,
                   service_url: str) -> StoreResponse:
    """The Store Instances Response Module of the outcomes, in DICOM JSON."""
    stored = [o for o in outcomes if o.failure is None]
    failed = [o for o in outcomes if o.failure is not None]
    body: dict[str, Any] = {}
    studies = {o.study_instance_uid for o in stored}
    if study is not None or len(studies) == 1:
        body[f"{RETRIEVE_URL:08X}"] = value_json(
            RETRIEVE_URL, f"{service_url}/studies/{study or next(iter(studies))}")
    if failed:
        body[f"{FAILED_SOP_SEQUENCE:08X}"] = {"vr": "SQ", "Value": [_failed_item(o) for o in failed]}
    if stored:
        body[f"{REFERENCED_SOP_SEQUENCE:08X}"] = {
            "vr": "SQ", "Value": [_stored_item(o, service_url) for o in stored]}
    status = 200 if not failed else 409 if not stored else 202
    return StoreResponse(status, body, sorted(s for s in studies if s))


def _reference(o: PartOutcome) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if o.sop_class_uid:
        item[f"{REFERENCED_SOP_CLASS_UID:08X}"] = value_json(REFERENCED_SOP_CLASS_UID, o.sop_class_uid)
    if o.sop_instance_uid:
        item[f"{REFERENCED_SOP_INSTANCE_UID:08X}"] = value_json(REFERENCED_SOP_INSTANCE_UID,
                                                               o.sop_instance_uid)
    return item


def _failed_item(o: PartOutcome) -> dict[str, Any]:
    item = _reference(o)
    item[f"{FAILURE_REASON:08X}"] = value_json(FAILURE_REASON, o.failure)
    return dict(sorted(item.items()))


def _stored_item(o: PartOutcome, service_url: str) -> dict[str, Any]:
    item = _reference(o)
    item[f"{RETRIEVE_URL:08X}"] = value_json(
        RETRIEVE_URL, f"{service_url}/studies/{o.study_instance_uid}/series/{o.series_instance_uid}"
                      f"/instances/{o.sop_instance_uid}")
    return dict(sorted(item.items()))
