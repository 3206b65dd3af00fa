"""Audit rows of the DIMSE requests that read patient data (C-FIND, C-MOVE, C-GET).

Each request leaves one row per study it covered in radai's audit log
(:func:`radai.auth.audit.record_access`): who is the calling AE title (actor kind
``ae``), from where the peer's address, what the action (``dimse.c-find``,
``dimse.c-move``, ``dimse.c-get``) and the Study Instance UIDs, and the outcome with
the final DIMSE status (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.5). A C-MOVE also records
its Move Destination AE title, where the instances went (as the destination of the
"DICOM Instances Transferred" audit message, PS3.15 A.5.3.8). A request that covered
no study (nothing matched, or refused before matching) leaves one row without a study.
A C-MOVE to a destination radai does not know (0xA801) and an association refused for
its calling AE title are recorded as denied; every other outcome as allowed, with its
status.

The rows are written when the final response has been sent, so they carry the status
pynetdicom worked out from the sub-operations (completed, failed, warning) or a
cancellation. An association that ends before its final response still leaves its
rows, without a status. C-STORE requests are not audited (they write, not read), and
no work is added to them: the response hook returns at once for other messages.
The audit table holds study UIDs; log lines here carry none.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import evt

from radai.auth.audit import ActorKind, Outcome, record_access
from radai.db import Database
from radai.dimse.status import Status, status_class

log = logging.getLogger(__name__)

#: Action names (never patient data), by the message type of the final response.
FIND_ACTION = "dimse.c-find"
MOVE_ACTION = "dimse.c-move"
GET_ACTION = "dimse.c-get"
ASSOCIATION_ACTION = "dimse.association"
_ACTIONS = {"C_FIND_RSP": FIND_ACTION, "C_MOVE_RSP": MOVE_ACTION, "C_GET_RSP": GET_ACTION}

#: Final statuses that mean radai refused to serve the requestor.
_DENIED = frozenset({int(Status.MOVE_DESTINATION_UNKNOWN)})

#: The audit log's limit on actor names; an AE title is at most 16 characters (PS3.5 §6.2).
_ACTOR_MAX = 64


def calling_ae_title(event: evt.Event) -> str:
    """The requestor's AE title, as the audit log's actor."""
    primitive = event.assoc.requestor.primitive
    title = str(event.assoc.requestor.ae_title or "").strip()
    if not title and primitive is not None:
        title = str(primitive.calling_ae_title or "").strip()
    # A-ASSOCIATE-RQ always carries one (PS3.8 §9.3.2); the audit log needs a name.
    return title[:_ACTOR_MAX] or "(none)"


def move_destination(event: evt.Event) -> str:
    """A C-MOVE request's Move Destination AE title (PS3.7 §9.3.4.1), as the audit log keeps it."""
    raw: Any = event.move_destination
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    # An AE title is at most 16 characters; a longer value is kept cut, not refused.
    return str(raw or "").strip(" \0")[:_ACTOR_MAX] or "(none)"


def peer_address(event: evt.Event) -> str:
    """The requestor's network address (its IP address, as the HTTP side records)."""
    return str(event.assoc.requestor.address or "")


@dataclass
class Access:
    """One Query/Retrieve request whose audit rows are written once it ends.

    Handlers add the Study Instance UIDs they return or send as they go.
    """

    action: str
    actor: str
    client: str
    #: The Move Destination of a C-MOVE; None when the data goes back to the requestor.
    destination: str | None = None
    studies: list[str] = field(default_factory=list)

    def add(self, study_uids: Iterable[str | None]) -> None:
        """Note studies this request covers (duplicates and empty values are ignored)."""
        self.studies.extend(uid for uid in study_uids if uid)


class DimseAudit:
    """Collects each Query/Retrieve request's studies and writes its rows when it ends."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        # (association, Message ID of the request) -> its access
        self._open: dict[tuple[int, int], Access] = {}

    def begin(self, event: evt.Event, action: str) -> Access:
        """Start auditing the request of ``event`` (a C-FIND, C-MOVE or C-GET)."""
        access = Access(action=action, actor=calling_ae_title(event), client=peer_address(event),
                        destination=move_destination(event) if action == MOVE_ACTION else None)
        request: Any = event.request
        key = (id(event.assoc), int(request.MessageID))
        with self._lock:
            self._open[key] = access
        return access

    def response_sent(self, event: evt.Event, message_type: str) -> None:
        """``EVT_DIMSE_SENT`` of a response: after a final one, write that request's rows."""
        if message_type not in _ACTIONS:
            return
        command: Any = event.message.command_set
        status = int(command.Status)
        if status_class(status) == "pending":
            return
        key = (id(event.assoc), int(command.MessageIDBeingRespondedTo))
        with self._lock:
            access = self._open.pop(key, None)
        if access is None:  # a request that ended before its handler ran
            access = Access(action=_ACTIONS[message_type], actor=calling_ae_title(event),
                            client=peer_address(event))
        self._write(access, status)

    def association_closed(self, event: evt.Event) -> None:
        """``EVT_CONN_CLOSE``: requests left without a final response are recorded as they are."""
        assoc = id(event.assoc)
        with self._lock:
            left = [self._open.pop(key) for key in [k for k in self._open if k[0] == assoc]]
        for access in left:
            self._write(access, None)

    def refused(self, event: evt.Event) -> None:
        """An association refused for its calling AE title or address (a denied attempt)."""
        self._write(Access(action=ASSOCIATION_ACTION, actor=calling_ae_title(event),
                           client=peer_address(event)), None, denied=True)

    def _write(self, access: Access, status: int | None, *, denied: bool = False) -> None:
        outcome = Outcome.DENIED if denied or status in _DENIED else Outcome.ALLOWED
        studies: list[str] | None = list(dict.fromkeys(access.studies)) or None
        try:
            record_access(self._db, actor=access.actor, actor_kind=ActorKind.AE, action=access.action,
                          study_uid=studies, client=access.client, outcome=outcome, status=status,
                          destination=access.destination)
        except Exception as exc:  # noqa: BLE001 - the association goes on; the failure is logged
            log.error("could not write the audit rows of a %s request (%s)", access.action,
                      type(exc).__name__)
