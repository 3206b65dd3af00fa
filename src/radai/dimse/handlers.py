"""One handler per DIMSE message radai answers, bound from :func:`event_handlers`.

Each handler returns or yields DIMSE statuses from :mod:`radai.dimse.status`. The
C-STORE handler stays thin: it hands the received bytes to the archive, which checks,
writes and indexes them before the status goes back. Log lines name attributes and
:func:`radai.logs.uid_ref` references, never values from a data set.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

from radai.archive.parse import Rejection, RejectReason
from radai.archive.query import Level
from radai.archive.service import Archive
from radai.config import DimseSettings
from radai.db import Database
from radai.dimse import qr, scu
from radai.dimse.audit import FIND_ACTION, GET_ACTION, MOVE_ACTION, DimseAudit
from radai.dimse.network import set_nodelay
from radai.dimse.status import STORE_STATUS, Status, status_class
from radai.metrics import Metrics

log = logging.getLogger(__name__)

#: PS3.8 §9.3.4 / Table 9-21: A-ASSOCIATE-RJ rejected-permanent, service-user,
#: calling AE title not recognised.
_REJECT_CALLING_AE = (0x01, 0x01, 0x03)
#: PS3.7 §9.1.1.1.9: Error Comment is an LO, at most 64 characters.
_ERROR_COMMENT_MAX = 64

#: Metric label of each response message type.
_RESPONSES = {"C_ECHO_RSP": "C-ECHO", "C_STORE_RSP": "C-STORE", "C_FIND_RSP": "C-FIND",
              "C_MOVE_RSP": "C-MOVE", "C_GET_RSP": "C-GET"}


@dataclass(frozen=True)
class DimseNode:
    """What the handlers work with."""

    ae_title: str
    settings: DimseSettings
    archive: Archive
    db: Database
    metrics: Metrics
    audit: DimseAudit


def _status(code: int, comment: str = "") -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:_ERROR_COMMENT_MAX]
    return ds


def _calling_ae(assoc: Association) -> str:
    return str(assoc.requestor.ae_title).strip()


# --- association -------------------------------------------------------------------


def _addresses(host: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except OSError:
        return set()


def is_allowed(settings: DimseSettings, calling_ae: str, address: str) -> bool:
    """Whether a calling AE title at ``address`` may associate (radai's DIMSE allow-list).

    ``allowed_calling_aets`` (empty: any) limits AE titles; with ``require_known_peers``
    the AE title must be a configured peer and the address one of that peer's host.
    """
    if settings.allowed_calling_aets and calling_ae not in settings.allowed_calling_aets:
        return False
    if settings.require_known_peers:
        peer = settings.peer(calling_ae)
        if peer is None or address not in _addresses(peer.host):
            return False
    return True


def handle_requested(event: evt.Event, node: DimseNode) -> None:
    """``EVT_REQUESTED``: reject callers not on the allow-list (PS3.8 §7.1.1.9, A-ASSOCIATE-RJ)."""
    assoc = event.assoc
    primitive = assoc.requestor.primitive
    calling = "" if primitive is None else str(primitive.calling_ae_title).strip()
    address = str(assoc.requestor.address)
    if not is_allowed(node.settings, calling, address):
        log.warning("association refused: calling AE title not allowed")
        node.audit.refused(event)
        assoc.acse.send_reject(*_REJECT_CALLING_AE)
        # As pynetdicom's own rejections do: wait until the A-ASSOCIATE-RJ is out and the
        # upper layer has stopped, before the connection is closed.
        assoc.kill()


def handle_conn_open(event: evt.Event, node: DimseNode) -> None:
    """``EVT_CONN_OPEN``: count the connection and turn Nagle's algorithm off."""
    node.metrics.associations_active.inc()
    set_nodelay(event)


def handle_conn_close(event: evt.Event, node: DimseNode) -> None:
    """``EVT_CONN_CLOSE``: the connection is gone (requests it left unfinished are audited)."""
    node.metrics.associations_active.dec()
    node.audit.association_closed(event)


def handle_dimse_sent(event: evt.Event, node: DimseNode) -> None:
    """``EVT_DIMSE_SENT``: count every final response by message and status class; a
    final C-FIND, C-MOVE or C-GET response writes that request's audit rows."""
    message_type = type(event.message).__name__
    message = _RESPONSES.get(message_type)
    if message is None:
        return
    status = int(event.message.command_set.Status)
    label = status_class(status)
    if label != "pending":
        node.metrics.dimse_requests.labels(message=message, status=label).inc()
    node.audit.response_sent(event, message_type)


# --- verification ------------------------------------------------------------------


def handle_echo(event: evt.Event, node: DimseNode) -> int:
    """C-ECHO (PS3.4 Annex A, PS3.7 §9.1.5): Success."""
    return Status.SUCCESS


# --- storage -----------------------------------------------------------------------


def handle_store(event: evt.Event, node: DimseNode) -> Dataset | int:
    """C-STORE (PS3.4 Annex B): store the data set as received; refusals per Table B.2-1.

    The data set bytes go to the archive with the transfer syntax of their presentation
    context (PS3.7 §9.3.1.1); the archive adds radai's File Meta Information.
    """
    request: Any = event.request
    try:
        data = event.encoded_dataset(include_meta=False)
        transfer_syntax = str(event.context.transfer_syntax)
    except Exception as exc:  # noqa: BLE001 - a request pynetdicom could not frame
        log.warning("C-STORE request without a readable data set (%s)", type(exc).__name__)
        return _status(int(Status.UNABLE_TO_PROCESS), "the data set cannot be read")
    try:
        node.archive.store(
            data, source="dimse", source_ae_title=_calling_ae(event.assoc),
            expected_sop_instance_uid=str(request.AffectedSOPInstanceUID or "").strip("\0 "),
            expected_sop_class_uid=str(request.AffectedSOPClassUID or "").strip("\0 "),
            transfer_syntax_uid=transfer_syntax,
        )
    except Rejection as rej:
        return _status(STORE_STATUS[rej.reason], rej.message)
    except Exception as exc:  # noqa: BLE001 - answered, and logged without its message (values)
        log.error("C-STORE failed unexpectedly (%s)", type(exc).__name__)
        return _status(int(RejectReason.PROCESSING_FAILURE), "the instance could not be stored")
    return Status.SUCCESS


# --- query -------------------------------------------------------------------------


def handle_find(event: evt.Event, node: DimseNode) -> Iterator[tuple[Any, Dataset | None]]:
    """C-FIND (PS3.4 Annex C.4.1): Patient Root and Study Root, every level.

    The studies of the matches returned are audited (see :mod:`radai.dimse.audit`).
    """
    access = node.audit.begin(event, FIND_ACTION)
    levels = qr.FIND_MODELS[str(event.request.AffectedSOPClassUID)]
    try:
        request = qr.parse_find(event.identifier, levels)
        with node.db.session() as session:
            rows = qr.find(session, request)
            studies = qr.row_studies(session, rows)
    except qr.IdentifierError as exc:
        log.info("C-FIND refused: %s", exc.message)
        yield _status(int(exc.status), exc.message), None
        return
    except Exception as exc:  # noqa: BLE001 - undecodable identifier or database failure
        log.warning("C-FIND failed (%s)", type(exc).__name__)
        yield _status(int(Status.UNABLE_TO_PROCESS), "the query could not be processed"), None
        return
    for row, row_studies in zip(rows, studies, strict=True):
        if event.is_cancelled:
            yield Status.CANCEL, None
            return
        access.add(row_studies)
        yield Status.PENDING, qr.response_identifier(row, request, retrieve_ae_title=node.ae_title)


# --- retrieve ----------------------------------------------------------------------


def _items(event: evt.Event, node: DimseNode, models: dict[str, tuple[Level, ...]]
           ) -> list[qr.RetrieveItem]:
    """The instances a C-MOVE/C-GET covers; raises :class:`qr.IdentifierError`."""
    levels = models[str(event.request.AffectedSOPClassUID)]
    try:
        identifier = event.identifier
    except Exception:  # noqa: BLE001 - undecodable identifier
        raise qr.IdentifierError(Status.UNABLE_TO_PROCESS, "the Identifier cannot be decoded") from None
    _level, matches = qr.parse_retrieve(identifier, levels)
    with node.db.session() as session:
        return qr.retrieve_items(session, matches)


def _sub_operations(event: evt.Event, node: DimseNode, items: list[qr.RetrieveItem],
                    assoc: Any) -> Iterator[tuple[int, Dataset]]:
    for item in items:
        if event.is_cancelled:
            yield Status.CANCEL, None  # type: ignore[misc]
            return
        path = node.archive.storage.path(item.relative_path)
        association = assoc() if callable(assoc) else assoc
        try:
            ds = scu.payload(association, path)
        except Exception as exc:  # noqa: BLE001 - a missing or unreadable file fails this instance
            log.warning("stored instance unreadable for retrieve (%s)", type(exc).__name__)
            ds = scu.unreadable(item.sop_class_uid, item.sop_instance_uid)
        yield Status.PENDING, ds


def handle_move(event: evt.Event, node: DimseNode) -> Iterator[Any]:
    """C-MOVE (PS3.4 Annex C.4.2) to a configured peer; unknown destination → 0xA801.

    pynetdicom opens the association to the destination with the contexts yielded
    here, sends each yielded data set as a C-STORE sub-operation, counts the
    sub-operation outcomes and sends the pending and final responses (0x0000, 0xB000,
    0xA702). An identifier radai cannot use ends the request before any association
    with a Cxxx (Unable to process) status. The studies covered are audited, a refused
    destination as denied (see :mod:`radai.dimse.audit`).
    """
    access = node.audit.begin(event, MOVE_ACTION)
    peer = node.settings.peer(str(event.move_destination or ""))
    if peer is None:
        log.info("C-MOVE refused: move destination is not a configured peer")
        # What was asked for, for the audit log; nothing is sent. An identifier radai
        # cannot use names no study.
        with contextlib.suppress(Exception):
            access.add(i.study_instance_uid for i in _items(event, node, qr.MOVE_MODELS))
        yield None, None
        return
    items = _items(event, node, qr.MOVE_MODELS)
    access.add(i.study_instance_uid for i in items)
    holder: dict[str, Association] = {}

    def accepted(ev: evt.Event) -> None:
        holder["assoc"] = ev.assoc

    contexts: list[PresentationContext] = scu.presentation_contexts(
        (i.sop_class_uid, i.transfer_syntax_uid) for i in items)
    yield peer.host, peer.port, {
        "contexts": contexts,
        "max_pdu": node.settings.maximum_pdu_size,
        "evt_handlers": [(evt.EVT_CONN_OPEN, set_nodelay), (evt.EVT_ACCEPTED, accepted)],
    }
    yield len(items)
    yield from _sub_operations(event, node, items, lambda: holder["assoc"])


def handle_get(event: evt.Event, node: DimseNode) -> Iterator[Any]:
    """C-GET (PS3.4 Annex C.4.3): C-STORE sub-operations on the requestor's own association.

    The requestor proposes storage contexts with the SCP role (SCP/SCU Role Selection,
    PS3.7 §D.3.3.4); pynetdicom counts sub-operations and sends the final status.
    The studies covered are audited (see :mod:`radai.dimse.audit`).
    """
    access = node.audit.begin(event, GET_ACTION)
    items = _items(event, node, qr.GET_MODELS)
    access.add(i.study_instance_uid for i in items)
    yield len(items)
    yield from _sub_operations(event, node, items, event.assoc)


def event_handlers(node: DimseNode) -> list[evt.EventHandlerType]:
    """Every event radai handles, each bound to its one handler with ``node``."""
    return [
        (evt.EVT_REQUESTED, handle_requested, [node]),
        (evt.EVT_CONN_OPEN, handle_conn_open, [node]),
        (evt.EVT_CONN_CLOSE, handle_conn_close, [node]),
        (evt.EVT_DIMSE_SENT, handle_dimse_sent, [node]),
        (evt.EVT_C_ECHO, handle_echo, [node]),
        (evt.EVT_C_STORE, handle_store, [node]),
        (evt.EVT_C_FIND, handle_find, [node]),
        (evt.EVT_C_MOVE, handle_move, [node]),
        (evt.EVT_C_GET, handle_get, [node]),
    ]
