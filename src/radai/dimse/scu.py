"""Sending stored instances to DICOM peers with C-STORE (PS3.4 Annex B, PS3.7 §9.1.1).

Instances go out as they are stored: the file is read without decoding its pixels and,
when the peer accepted its transfer syntax, its data set bytes are sent unchanged. An
uncompressed instance may go in another uncompressed syntax the peer accepted
(pynetdicom re-encodes the elements, values untouched). Only when the peer accepted
none of the contexts proposing its syntax is a compressed instance decompressed
(pydicom) and sent uncompressed (PS3.5 §10, PS3.8 §9.3.2.2.1).

:func:`send_files` opens its own association (result delivery, scripts);
:func:`presentation_contexts` and :func:`payload` are the same two decisions for
C-MOVE and C-GET sub-operations, which pynetdicom's Query/Retrieve service sends on
an association it manages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_context, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

from radai.archive.transfer_syntaxes import UNCOMPRESSED
from radai.config import DimsePeer
from radai.dimse.network import configure_pynetdicom, set_nodelay
from radai.dimse.status import status_class
from radai.logs import uid_ref

log = logging.getLogger(__name__)

#: PS3.8 §9.3.2.2: presentation context IDs are odd numbers 1-255, so at most 128 contexts.
MAX_CONTEXTS = 128
_FALLBACK = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))


def presentation_contexts(items: Iterable[tuple[str, str]]) -> list[PresentationContext]:
    """Contexts to propose for sending instances given as (SOP Class UID, Transfer Syntax UID).

    One context per stored transfer syntax of each SOP class (so that the peer accepts or
    refuses exactly that syntax), plus one uncompressed context per SOP class to fall
    back to. At most :data:`MAX_CONTEXTS`; exact contexts take precedence.
    """
    exact: dict[tuple[str, str], None] = {}
    classes: dict[str, None] = {}
    for sop_class, ts in items:
        exact[(sop_class, ts)] = None
        classes[sop_class] = None
    contexts = [build_context(sop_class, [ts]) for sop_class, ts in exact]
    for sop_class in classes:
        if len(contexts) >= MAX_CONTEXTS:
            break
        contexts.append(build_context(sop_class, list(_FALLBACK)))
    return contexts[:MAX_CONTEXTS]


def _accepted_syntaxes(assoc: Association, sop_class: str) -> set[str]:
    return {str(cx.transfer_syntax[0]) for cx in assoc.accepted_contexts
            if cx.abstract_syntax == sop_class and cx.as_scu and cx.transfer_syntax}


def payload(assoc: Association, path: Path) -> Dataset:
    """The data set to send for the file at ``path`` on ``assoc``.

    The file as stored when the peer accepted its transfer syntax (or, for an
    uncompressed one, any uncompressed syntax: pynetdicom re-encodes without touching
    values); otherwise, for a compressed one, its decompressed form. When nothing fits,
    the stored form is returned and sending it fails, which counts as a failed
    sub-operation naming the instance.
    """
    ds = dcmread(path)  # values stay raw bytes: pixels are not decoded
    ts = str(ds.file_meta.TransferSyntaxUID)
    accepted = _accepted_syntaxes(assoc, str(ds.SOPClassUID))
    if ts in accepted or ts in UNCOMPRESSED:
        return ds
    if accepted & set(_FALLBACK):
        try:
            # The same SOP Instance in another transfer syntax keeps its UID (PS3.5 §10).
            ds.decompress(generate_instance_uid=False)
        except Exception as exc:  # noqa: BLE001 - a codec failure fails this instance only
            log.warning("instance %s cannot be decompressed for the peer (%s)",
                        uid_ref(str(ds.SOPInstanceUID)), type(exc).__name__)
    return ds


def unreadable(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    """A stand-in for an instance whose file cannot be read.

    It has no transfer syntax, so pynetdicom cannot send it and counts a failed
    sub-operation naming the instance (PS3.4 §C.4.2.1.4.2), instead of sending bytes.
    """
    ds = Dataset()
    ds.SOPClassUID = UID(sop_class_uid)
    ds.SOPInstanceUID = UID(sop_instance_uid)
    return ds


@dataclass(frozen=True)
class InstanceResult:
    """What happened to one file."""

    path: Path
    #: SOP Instance UID, "" when the file could not be read.
    sop_instance_uid: str
    #: The peer's C-STORE status; None when the instance was not sent or got no answer.
    status: int | None

    @property
    def ok(self) -> bool:
        """Stored by the peer (success or warning status)."""
        return self.status is not None and status_class(self.status) in ("success", "warning")


@dataclass(frozen=True)
class SendReport:
    """The outcome of :func:`send_files`."""

    peer_ae_title: str
    results: list[InstanceResult] = field(default_factory=list)
    #: Why no association could be used (no patient data), None when one was.
    association_error: str | None = None

    @property
    def completed(self) -> int:
        """Instances the peer stored with status Success."""
        return sum(1 for r in self.results if r.status is not None and status_class(r.status) == "success")

    @property
    def warnings(self) -> int:
        """Instances the peer stored with a warning status."""
        return sum(1 for r in self.results if r.status is not None and status_class(r.status) == "warning")

    @property
    def failed(self) -> int:
        """Instances not stored by the peer."""
        return sum(1 for r in self.results if not r.ok)


def _meta(path: Path) -> tuple[str, str, str] | None:
    try:
        meta = read_file_meta_info(path)
        return (str(meta.MediaStorageSOPClassUID), str(meta.MediaStorageSOPInstanceUID),
                str(meta.TransferSyntaxUID))
    except Exception:  # noqa: BLE001 - any unreadable file fails on its own
        return None


def send_files(*, peer: DimsePeer, calling_ae: str, paths: list[Path],
               timeout_seconds: float = 60.0, max_pdu: int = 0) -> SendReport:
    """Send instance files to ``peer`` over one association (C-STORE SCU, PS3.4 B.2.2).

    Returns a status for every file, in order. Files that cannot be read, or whose
    transfer syntax and SOP class the peer accepted no context for, fail on their own.
    """
    configure_pynetdicom()
    metas = [_meta(p) for p in paths]
    readable = [m for m in metas if m is not None]
    if not readable:
        return SendReport(peer.ae_title, [InstanceResult(p, "", None) for p in paths])
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_seconds
    ae.maximum_pdu_size = max_pdu
    assoc = ae.associate(peer.host, peer.port, contexts=presentation_contexts(
        (m[0], m[2]) for m in readable), ae_title=peer.ae_title, max_pdu=max_pdu,
        evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)])
    if not assoc.is_established:
        # pynetdicom reports a refused or timed-out connection as an abort too.
        why = "association rejected" if assoc.is_rejected else "no association (no connection or aborted)"
        log.warning("sending to %s failed: %s", peer.ae_title, why)
        return SendReport(peer.ae_title, [InstanceResult(p, m[1] if m else "", None)
                                          for p, m in zip(paths, metas, strict=True)],
                          association_error=why)
    results = []
    try:
        for path, meta in zip(paths, metas, strict=True):
            results.append(_send_one(assoc, path, meta))
            if not assoc.is_established:
                break
    finally:
        if assoc.is_established:
            assoc.release()
    results += [InstanceResult(p, m[1] if m else "", None)
                for p, m in zip(paths[len(results):], metas[len(results):], strict=True)]
    return SendReport(peer.ae_title, results)


def _send_one(assoc: Association, path: Path, meta: tuple[str, str, str] | None) -> InstanceResult:
    if meta is None:
        log.warning("an instance file cannot be read; not sent")
        return InstanceResult(path, "", None)
    try:
        rsp: Any = assoc.send_c_store(payload(assoc, path))
    except (ValueError, AttributeError, OSError) as exc:
        log.warning("instance %s not sent: %s", uid_ref(meta[1]), type(exc).__name__)
        return InstanceResult(path, meta[1], None)
    status = rsp.get("Status") if rsp is not None else None
    return InstanceResult(path, meta[1], None if status is None else int(status))
