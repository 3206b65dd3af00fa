"""Associations radai accepts wait for work instead of polling for it.

pynetdicom runs each association in two threads, both of which poll: the DUL thread
(reading PDUs and sending the ones queued for it) sleeps ``_run_loop_delay`` (1 ms)
whenever it finds nothing to do, and the association thread (serving DIMSE messages)
sleeps 1 ms before every look at its queue (pynetdicom marks both as to be made
event-based). On one association every C-STORE then waits for up to three of these
sleeps: the request PDUs to be read, the decoded request to be picked up, the response
to be sent. Measured here with a bare pynetdicom SCP and DCMTK's storescu, one
association: ~150 instances/s polling, ~230/s waiting for work; and every idle
association wakes both its threads a thousand times a second, taking the interpreter
lock from the associations that have work.

:func:`adopt` turns a new acceptor association into one whose threads block until
there is work:

* the DUL thread waits in ``select`` on the connection and on a wake-up pipe, which
  :meth:`_EventDrivenDUL.send_pdu` (every outgoing primitive) and stopping write to;
* the association thread waits on an event set whenever a complete DIMSE message or
  an ACSE primitive (release, abort) is queued for it.

Both still wake every :data:`IDLE_WAKE_SECONDS` to check their timers (ARTIM, network
idle timeout) and whether their peer thread is alive. The protocol handling itself
(state machine, DIMSE decoding, service classes) stays pynetdicom's: only the waiting
differs. The loop below follows pynetdicom 3.0's acceptor loop check for check.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import threading
from typing import Any

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.transport import AssociationSocket

#: The association's own log lines go where pynetdicom's loop writes them.
_PYNETDICOM_LOG = logging.getLogger("pynetdicom.association")

#: How often a waiting thread wakes with nothing to do, to check timers and its peer.
IDLE_WAKE_SECONDS = 0.05


class _SignallingQueue(queue.Queue[Any]):
    """A queue that also sets an event whenever something is put in it."""

    def __init__(self, signal: threading.Event) -> None:
        super().__init__()
        self._signal = signal

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._signal.set()


class _EventDrivenDUL(DULServiceProvider):
    """pynetdicom's DUL provider, waiting in ``select`` rather than sleeping when idle."""

    _wake_r: int
    _wake_w: int

    def _install(self) -> None:
        # The wake-up pipe exists while the DUL thread runs (see run).
        self._wake_r = self._wake_w = -1
        # The loop no longer sleeps between looks; it blocks in _is_transport_event.
        self._run_loop_delay = 0

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            os.write(self._wake_w, b"\0")

    def send_pdu(self, primitive: Any) -> None:
        super().send_pdu(primitive)
        self._wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    def stop_dul(self) -> bool:
        if self.state_machine.current_state == "Sta1":
            # Let the thread see the kill at once rather than at its next timer check.
            self._kill_thread = True
            self._wake()
        return bool(super().stop_dul())

    def _is_transport_event(self) -> bool:
        # Sta13 (waiting for the peer to close): pynetdicom closes at once when no data
        # is waiting; do not hold that up.
        if (self.event_queue.empty() and self.to_provider_queue.empty() and not self._kill_thread
                and self.state_machine.current_state != "Sta13"):
            self._wait_for_work()
        return bool(super()._is_transport_event())

    def _wait_for_work(self) -> None:
        """Block until the peer sends, a primitive is queued, or the idle wake is due."""
        sock = getattr(self.socket, "socket", None)
        watched: list[Any] = [self._wake_r] if sock is None else [sock, self._wake_r]
        try:
            ready, _, _ = select.select(watched, [], [], IDLE_WAKE_SECONDS)
        except (OSError, ValueError):  # the connection is closing: pynetdicom handles it next
            return
        if self._wake_r in ready:
            with contextlib.suppress(OSError):  # drained (non-blocking)
                while os.read(self._wake_r, 512):
                    pass

    def run(self) -> None:
        # The thread's target is pynetdicom's run_reactor, bound when the provider was
        # made; its loop calls the methods above through this class.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        try:
            super().run()
        finally:
            wake_r, wake_w = self._wake_r, self._wake_w
            self._wake_r = self._wake_w = -1
            for fd in (wake_r, wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)


class _EventDrivenAssociation(Association):
    """pynetdicom's acceptor association, waiting on an event rather than polling."""

    _work: threading.Event

    def _install(self) -> None:
        self._work = threading.Event()
        self.dimse.msg_queue = _SignallingQueue(self._work)
        self.dul.to_user_queue = _SignallingQueue(self._work)

    def kill(self) -> None:
        self._work.set()
        super().kill()

    def _has_work(self) -> bool:
        return not (self.dimse.msg_queue.empty() and self.dul.to_user_queue.empty())

    def _run_reactor(self) -> None:
        """Serve DIMSE messages until released, aborted, the DUL stops or the network times out."""
        self._is_paused = False
        while not self._kill:
            if not self._has_work():
                self._work.wait(IDLE_WAKE_SECONDS)
            self._work.clear()

            # While a local service call (release, send_*) is under way it owns the
            # queues: wait here, paused, until it is done (pynetdicom's protocol).
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, int(context_id))  # type: ignore[arg-type]
                # More may be queued already: look again before waiting.
                self._work.set()

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                _PYNETDICOM_LOG.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                _PYNETDICOM_LOG.info("Association Aborted%s",
                                     " (A-P-ABORT)" if self.acse.is_aborted("a-p-abort") else "")
                # Lets EVT_ACSE_RECV fire for the abort primitive, as pynetdicom does.
                self.dul.receive_pdu(wait=False)
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                _PYNETDICOM_LOG.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


class _WholeReadSocket(AssociationSocket):
    """pynetdicom's association socket, reading a PDU into one buffer.

    pynetdicom reads in 4 KiB pieces and appends them one by one: for the 128 KiB PDUs
    a storage SCU sends when radai leaves the PDU size open, that is 32 calls and as
    many appends per PDU. Reading into a buffer of the whole length takes as many calls
    as the network needs.
    """

    def recv(self, nr_bytes: int) -> bytearray:
        sock: Any = self.socket
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        got = 0
        try:
            while got < nr_bytes:
                n = sock.recv_into(view[got:], nr_bytes - got)
                if not n:  # the connection was broken: what was read so far, as pynetdicom
                    return buffer[:got]
                got += n
        finally:
            view.release()
        return buffer


def adopt(assoc: Association) -> None:
    """Make a new acceptor association (threads not started yet) wait for work."""
    if type(assoc.dul.socket) is AssociationSocket:
        assoc.dul.socket.__class__ = _WholeReadSocket
    assoc.dul.__class__ = _EventDrivenDUL
    assoc.__class__ = _EventDrivenAssociation
    dul: _EventDrivenDUL = assoc.dul  # type: ignore[assignment]
    dul._install()
    assert isinstance(assoc, _EventDrivenAssociation)
    assoc._install()
