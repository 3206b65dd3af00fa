"""A background thread that works in passes and sleeps when a pass finds nothing.

The stability monitor, the result worker and the outbox run this way: a pass claims
what is due from the database and handles it; when it handled nothing the thread waits
``poll_seconds`` or until :meth:`PollingThread.wake` says there is new work.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class PollingThread:
    """Start, stop and wake one thread calling :meth:`run_once` until stopped."""

    thread_name = "radai-worker"

    def __init__(self, poll_seconds: float) -> None:
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """One pass; returns how much it handled (0 lets the thread sleep)."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the pass in hand."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def wake(self) -> None:
        """Look for due work now."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once() > 0
            except Exception:
                log.exception("%s pass failed", self.thread_name)
                busy = False
            if not busy:
                self._wake.wait(self._poll_seconds)
                self._wake.clear()
