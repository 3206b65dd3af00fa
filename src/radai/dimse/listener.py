"""radai's Application Entity: its presentation contexts, and a listener accepting associations.

Supported (PS3.4): Verification; Storage for every storage SOP class radai accepts
(retired ones included), in every transfer syntax it accepts, with the SCU role on
offer too so that a C-GET requestor can take the SCP role (PS3.7 §D.3.3.4); Patient
Root and Study Root Query/Retrieve FIND, MOVE and GET.
"""

from __future__ import annotations

import copy
import logging
import socket
import socketserver
import threading
from typing import Any

from pydicom import uid
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from radai.archive.sop_classes import storage_sop_classes
from radai.archive.transfer_syntaxes import ACCEPTED_TRANSFER_SYNTAXES
from radai.dimse import qr
from radai.dimse.handlers import DimseNode, event_handlers
from radai.dimse.network import configure_pynetdicom
from radai.dimse.reactor import adopt
from radai.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

log = logging.getLogger(__name__)

#: Verification SOP Class (PS3.4 Annex A, PS3.6 Annex A).
_VERIFICATION = "1.2.840.10008.1.1"
#: Transfer syntaxes for commands and identifiers (PS3.5 §10.1): the uncompressed ones.
_IDENTIFIER_SYNTAXES = [str(uid.ExplicitVRLittleEndian), str(uid.ImplicitVRLittleEndian),
                        str(uid.ExplicitVRBigEndian)]


def _storage_syntaxes() -> list[str]:
    """Accepted transfer syntaxes in radai's order of preference.

    pynetdicom gives each context the first of these the requestor also proposed
    (PS3.8 §9.3.3.2 leaves the choice to the acceptor): Explicit VR Little Endian keeps
    VRs and costs nothing to read; lossless compression next; lossy last, so that an
    instance is never taken lossy when the sender offered it any other way.
    """
    ordered = [
        str(uid.ExplicitVRLittleEndian),
        str(uid.JPEGLSLossless), str(uid.JPEG2000Lossless), str(uid.JPEGLosslessSV1), str(uid.JPEGLossless),
        str(uid.RLELossless), str(uid.DeflatedExplicitVRLittleEndian),
        str(uid.ImplicitVRLittleEndian), str(uid.ExplicitVRBigEndian),
        str(uid.JPEGLSNearLossless), str(uid.JPEG2000), str(uid.JPEGExtended12Bit), str(uid.JPEGBaseline8Bit),
    ]
    assert set(ordered) == ACCEPTED_TRANSFER_SYNTAXES and len(ordered) == len(set(ordered))
    return ordered


def build_ae(node: DimseNode) -> AE:
    """The Application Entity with radai's supported contexts, limits and timeouts."""
    settings = node.settings
    ae = AE(ae_title=node.ae_title)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.maximum_pdu_size = settings.maximum_pdu_size
    ae.maximum_associations = settings.maximum_associations
    ae.network_timeout = settings.network_timeout_seconds
    ae.acse_timeout = settings.acse_timeout_seconds
    ae.dimse_timeout = settings.dimse_timeout_seconds
    ae.add_supported_context(_VERIFICATION, _IDENTIFIER_SYNTAXES)
    storage = _storage_syntaxes()
    for sop_class in sorted(storage_sop_classes()):
        ae.add_supported_context(sop_class, storage, scu_role=True, scp_role=True)
    for models in (qr.FIND_MODELS, qr.MOVE_MODELS, qr.GET_MODELS):
        for model in models:
            ae.add_supported_context(model, _IDENTIFIER_SYNTAXES)
    return ae


class _SupportedContext(PresentationContext):
    """A supported presentation context that copies cheaply.

    pynetdicom deep-copies every supported context for each new association; for
    radai's ~215 contexts of up to 13 transfer syntaxes the generic ``deepcopy`` costs
    ~40 ms per association (measured), all of it holding the GIL. A context holds only
    immutable strings, flags and one list of UIDs, so copying the object and that list
    is a complete deep copy.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> _SupportedContext:
        new = copy.copy(self)
        new.__dict__.update({k: list(v) for k, v in self.__dict__.items() if isinstance(v, list)})
        return new

    @classmethod
    def of(cls, context: PresentationContext) -> _SupportedContext:
        """The same context as this class."""
        new = cls()
        new.__dict__.update(copy.deepcopy(context.__dict__))
        return new


class _RequestHandler(RequestHandler):
    """pynetdicom's handler of a new connection, whose association waits for work."""

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        adopt(assoc)
        return assoc


class _Server(ThreadedAssociationServer):
    """pynetdicom's threaded association server, managed by radai rather than by its AE."""

    #: Let several processes listen on the same port; the kernel spreads new
    #: connections over them (SO_REUSEPORT).
    share_port = False

    def server_bind(self) -> None:
        if self.share_port:
            assert self.socket is not None
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def shutdown(self) -> None:
        # Not registered with the AE (see Listener), so not removed from it either.
        socketserver.BaseServer.shutdown(self)
        self.server_close()


class _SharedPortServer(_Server):
    share_port = True


class Listener:
    """An AE with radai's contexts and handlers, accepting associations on one port."""

    def __init__(self, node: DimseNode, host: str, port: int, *, share_port: bool = False) -> None:
        configure_pynetdicom()
        self.ae = build_ae(node)
        contexts: list[PresentationContext] = [_SupportedContext.of(cx) for cx in self.ae.supported_contexts]
        self.server = self.ae.make_server(
            (host, port), contexts=contexts, evt_handlers=event_handlers(node),
            server_class=_SharedPortServer if share_port else _Server, request_handler=_RequestHandler)
        self._thread = threading.Thread(target=self.server.serve_forever, name="radai-dimse-accept",
                                        daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The bound port (the chosen one when 0 was asked for)."""
        return int(self.server.server_address[1])

    def close(self) -> None:
        """Stop accepting, then abort the associations still open."""
        self.server.shutdown()
        self._thread.join(10)
        self.ae.shutdown()


