"""STOW-RS client: sending result objects to a DICOMweb origin server (PS3.18 §10.5).

One request per batch: ``POST {base}/studies`` with a ``multipart/related;
type="application/dicom"`` body (framed by radai.dicomweb.multipart), ``Accept:
application/dicom+json``. The Store Instances Response Module (PS3.18 Table 10.5.3-1)
tells per instance what happened: Referenced SOP Sequence (0008,1199) for stored ones,
Failed SOP Sequence (0008,1198) with Failure Reason (0008,1197) for refused ones.
Status 200 stores every instance; 202 some (the sequences say which); 409 and other
errors none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from radai.dicomweb.media import DICOM
from radai.dicomweb.multipart import MultipartWriter

_REFERENCED_SOP = "00081199"
_FAILED_SOP = "00081198"
_SOP_INSTANCE = "00081155"
_FAILURE_REASON = "00081197"


@dataclass(frozen=True)
class StowItem:
    """One instance to send: its SOP Instance UID and its PS3.10 bytes."""

    sop_instance_uid: str
    data: bytes


@dataclass(frozen=True)
class StowOutcome:
    """What the origin server did with one instance."""

    sop_instance_uid: str
    ok: bool
    #: HTTP status and, for refused instances, the failure reason (no patient data).
    detail: str


def stow(client: httpx.Client, *, base_url: str, items: Sequence[StowItem],
         authorization: str | None = None) -> list[StowOutcome]:
    """Store ``items`` at ``base_url`` (a DICOMweb service root); one outcome per item, in order.

    Network errors raise :class:`httpx.HTTPError` (the caller records them for every item).
    """
    writer = MultipartWriter(DICOM)
    body = b"".join(writer.whole(DICOM, iter([item.data for item in items])))
    headers = {"Content-Type": writer.content_type, "Accept": "application/dicom+json"}
    if authorization:
        headers["Authorization"] = authorization
    response = client.post(f"{base_url.rstrip('/')}/studies", content=body, headers=headers)
    status = response.status_code
    stored, failed = _response_uids(response)
    out = []
    for item in items:
        uid = item.sop_instance_uid
        if uid in failed:
            out.append(StowOutcome(uid, False, f"HTTP {status}, failure reason {failed[uid]}"))
        elif status == 200 or (status == 202 and uid in stored):
            out.append(StowOutcome(uid, True, f"HTTP {status}"))
        else:
            out.append(StowOutcome(uid, False, f"HTTP {status}"))
    return out


def _response_uids(response: httpx.Response) -> tuple[set[str], dict[str, str]]:
    try:
        data: Any = response.json()
    except ValueError:
        return set(), {}
    if isinstance(data, list):  # some servers answer with a one-element array
        data = data[0] if data and isinstance(data[0], dict) else {}
    if not isinstance(data, dict):
        return set(), {}
    stored = {uid for item in _items(data, _REFERENCED_SOP) if (uid := _value(item, _SOP_INSTANCE))}
    failed = {uid: _value(item, _FAILURE_REASON) or "unknown"
              for item in _items(data, _FAILED_SOP) if (uid := _value(item, _SOP_INSTANCE))}
    return stored, failed


def _items(data: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    element = data.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def _value(item: dict[str, Any], tag: str) -> str:
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]) if isinstance(values, list) and values else ""
