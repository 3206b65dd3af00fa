"""``radai serve``: start every component, then the HTTP server, in one process."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

import uvicorn

from radai.app import Radai, build_web_app
from radai.config import Settings

log = logging.getLogger(__name__)


def run(settings: Settings) -> int:
    """Serve until interrupted; returns the process exit status."""
    radai = Radai(settings)
    try:
        radai.start()
    except Exception as exc:  # noqa: BLE001 - reported, then a non-zero exit
        log.error("radai could not start: %s", exc)
        radai.stop()
        return 1
    try:
        return serve_http(radai)
    finally:
        radai.stop()


def serve_http(radai: Radai) -> int:
    """Run the HTTP server for a started radai until SIGINT/SIGTERM."""
    settings = radai.settings
    app = build_web_app(radai)
    config = uvicorn.Config(app, host=settings.host, port=settings.http_port,
                            log_config=None, access_log=False, lifespan="on")
    server = _Server(config)
    log.info("radai serving HTTP on %s:%d, DICOM %s on port %d",
             settings.host, settings.http_port, settings.ae_title, settings.dicom_port)
    server.run()
    return 0 if server.started else 1


class _Server(uvicorn.Server):
    """uvicorn's server without re-raising SIGINT/SIGTERM once it has shut down.

    uvicorn re-raises a captured signal after its graceful shutdown, and the default
    SIGTERM action then ends the process before the caller's clean-up runs. radai must
    stop its components first: hand task and delivery leases back, finish the index
    batch in hand, close DICOM associations.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit)
                     for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)
