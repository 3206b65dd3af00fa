"""Process-wide pynetdicom settings and socket tuning radai relies on."""

from __future__ import annotations

import contextlib
import logging
import re
import socket

from pynetdicom import _config, evt

#: pynetdicom quotes element values in some messages, e.g.
#: "Non-conformant 'Affected SOP Instance UID' value '1.2.03'".
_QUOTED_VALUE = re.compile(r"value '[^']*'")


class _WithholdValues(logging.Filter):
    """Keeps the attribute name of a pynetdicom message and drops the quoted value."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "value '" in message:
            record.msg = _QUOTED_VALUE.sub("value (withheld)", message)
            record.args = ()
        return True


def configure_pynetdicom() -> None:
    """Keep patient data out of pynetdicom's logs and its per-PDU logging off the hot path.

    pynetdicom logs request and response Identifiers (names, IDs, dates) at INFO unless
    told otherwise, quotes non-conformant UIDs in warnings, and binds per-PDU logging
    handlers that cost time on every PDU. Idempotent.
    """
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.LOG_HANDLER_LEVEL = "none"
    root = logging.getLogger("pynetdicom")
    if root.getEffectiveLevel() < logging.INFO:
        root.setLevel(logging.INFO)
    names = ["pynetdicom", *(n for n in logging.root.manager.loggerDict if n.startswith("pynetdicom."))]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _WithholdValues) for f in logger.filters):
            logger.addFilter(_WithholdValues())


def set_nodelay(event: evt.Event) -> None:
    """``EVT_CONN_OPEN`` handler: send small PDUs (responses, headers) at once.

    With Nagle's algorithm on, a small write behind an unacknowledged one waits for the
    peer's delayed ACK (~40 ms on Linux), which caps one association at a few dozen
    instances per second.
    """
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        # A socket the peer already closed has nothing left to tune.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
