"""The DIMSE service class provider as a component of ``radai serve``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from radai.dimse.audit import DimseAudit
from radai.dimse.handlers import DimseNode
from radai.dimse.listener import Listener
from radai.dimse.workers import WorkerPool

if TYPE_CHECKING:
    from radai.app import Radai

log = logging.getLogger(__name__)


class DimseServer:
    """The DIMSE SCP as a :class:`radai.app.Component`: listens on the DICOM port.

    With ``dimse.processes`` above 1, worker processes (:mod:`radai.dimse.workers`)
    listen on the same port too, each with its own archive writer and indexer.
    """

    name = "dimse"

    def __init__(self, radai: Radai) -> None:
        self._settings = radai.settings
        self.node = DimseNode(ae_title=radai.settings.ae_title, settings=radai.settings.dimse,
                              archive=radai.archive, db=radai.db, metrics=radai.metrics,
                              audit=DimseAudit(radai.db))
        self._listener: Listener | None = None
        self._workers: WorkerPool | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the bound one once started, e.g. when 0 was asked for)."""
        return self._listener.port if self._listener is not None else self._settings.dicom_port

    def start(self) -> None:
        """Listen without blocking; raises OSError when the port cannot be bound."""
        processes = self._settings.dimse.processes
        self._listener = Listener(self.node, self._settings.host, self._settings.dicom_port,
                                  share_port=processes > 1)
        if processes > 1:
            self._workers = WorkerPool(self._settings, port=self.port, count=processes - 1,
                                       metrics=self.node.metrics)
            try:
                self._workers.start()
            except Exception:
                self.stop()
                raise
        log.info("DICOM %s listening on %s:%d (%d process%s)", self.node.ae_title, self._settings.host,
                 self.port, processes, "es" if processes > 1 else "")

    def stop(self) -> None:
        """Stop listening (every process) and end every open association."""
        if self._workers is not None:
            self._workers.stop()
            self._workers = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
