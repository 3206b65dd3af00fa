"""Extra DIMSE server processes sharing the DICOM port (``dimse.processes`` > 1).

pynetdicom runs every association in threads of one Python process, so all of them
share one interpreter lock: measured here, a bare pynetdicom storage SCP takes about as
many instances per second over 4 parallel associations as over one. Worker processes
listening on the same port (SO_REUSEPORT: the kernel spreads new connections over the
listeners) let parallel associations use every core.

Each worker has its own database engine, archive writer and indexer on the same data
folder and database as ``radai serve`` (the index is safe for several writers, see
:mod:`radai.archive.indexer`). Workers are started with the ``spawn`` method (never
``fork`` from a threaded process), report their counters and gauges to the parent once
a second, which adds them to its own metrics, and stop when told or when the parent's
end of the pipe closes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from prometheus_client import Counter, Gauge

from radai.config import Settings
from radai.metrics import Metrics

log = logging.getLogger(__name__)

#: How often a worker reports its metrics, and how long it may take to start.
REPORT_SECONDS = 1.0
START_TIMEOUT_SECONDS = 120.0

#: The settings a worker uses.
_WORKER_SETTINGS = {"data_dir", "database_url", "host", "dicom_port", "ae_title", "log_level",
                    "dimse", "archive"}

#: (metric name, sorted label items) → value
_Snapshot = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _metric_objects(metrics: Metrics) -> Iterator[Counter | Gauge]:
    for value in vars(metrics).values():
        if isinstance(value, Counter | Gauge):
            yield value


def _snapshot(metrics: Metrics) -> _Snapshot:
    """Current value of every counter and gauge sample, by metric name and labels."""
    out: _Snapshot = {}
    for metric in _metric_objects(metrics):
        for family in metric.collect():
            suffix = "_total" if family.type == "counter" else ""
            for sample in family.samples:
                if sample.name == family.name + suffix:
                    out[(family.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


class _Reporter:
    """Differences of a worker's metrics since the last report."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._last: _Snapshot = {}

    def deltas(self) -> list[tuple[str, dict[str, str], float]]:
        now = _snapshot(self._metrics)
        out = [(name, dict(labels), value - self._last.get((name, labels), 0.0))
               for (name, labels), value in now.items()
               if value != self._last.get((name, labels), 0.0)]
        self._last = now
        return out


def _apply(metrics: Metrics, deltas: list[tuple[str, dict[str, str], float]]) -> None:
    """Add a worker's metric differences to the parent's metrics."""
    by_name = {next(iter(m.describe())).name: m for m in _metric_objects(metrics)}
    for name, labels, delta in deltas:
        metric = by_name.get(name)
        if metric is None:
            continue
        target = metric.labels(**labels) if labels else metric
        target.inc(delta)


def run_worker(settings_data: dict[str, Any], port: int, conn: Connection) -> None:
    """Body of a worker process: serve DIMSE on ``port`` until told to stop."""
    from radai.archive.indexer import Indexer
    from radai.archive.service import Archive
    from radai.archive.storage import FileStorage
    from radai.db import Database
    from radai.dimse.audit import DimseAudit
    from radai.dimse.handlers import DimseNode
    from radai.dimse.listener import Listener
    from radai.logs import setup_logging

    settings = Settings(**settings_data)
    setup_logging(settings.log_level)
    db = Database(settings.resolved_database_url)
    indexer = Indexer(db, batch_size=settings.archive.index_batch_size)
    indexer.start()
    metrics = Metrics()
    storage = FileStorage(settings.storage_dir, fsync=settings.archive.fsync)
    archive = Archive(db=db, storage=storage, indexer=indexer, metrics=metrics)
    node = DimseNode(ae_title=settings.ae_title, settings=settings.dimse, archive=archive, db=db,
                     metrics=metrics, audit=DimseAudit(db))
    listener = Listener(node, settings.host, port, share_port=True)
    reporter = _Reporter(metrics)
    try:
        conn.send(("ready",))
        while not conn.poll(REPORT_SECONDS):
            conn.send(("metrics", reporter.deltas()))
    except (EOFError, OSError):
        pass  # the parent is gone: stop
    finally:
        listener.close()
        archive.close()
        indexer.stop()
        db.dispose()
        with contextlib.suppress(OSError):  # the parent may be gone
            conn.send(("metrics", reporter.deltas()))
            conn.send(("stopped",))
        conn.close()


class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.reader: threading.Thread | None = None


class WorkerPool:
    """``count`` worker processes serving DIMSE on ``port`` next to this process."""

    def __init__(self, settings: Settings, *, port: int, count: int, metrics: Metrics) -> None:
        self._settings = settings
        self._port = port
        self._count = count
        self._metrics = metrics
        self._workers: list[_Worker] = []

    def start(self) -> None:
        """Start every worker and wait until each listens; raises RuntimeError otherwise."""
        context = multiprocessing.get_context("spawn")
        # Only what DIMSE needs crosses to the workers (no other section's secrets).
        data = self._settings.model_dump(mode="json", include=_WORKER_SETTINGS)
        for number in range(1, self._count + 1):
            parent, child = context.Pipe()
            process = context.Process(target=run_worker, args=(data, self._port, child),
                                      name=f"radai-dimse-{number}", daemon=True)
            process.start()
            child.close()
            worker = _Worker(process, parent)
            self._workers.append(worker)
            if not parent.poll(START_TIMEOUT_SECONDS) or parent.recv() != ("ready",):
                raise RuntimeError(f"DIMSE worker process {number} did not start")
            worker.reader = threading.Thread(target=self._read, args=(worker,),
                                             name=f"radai-dimse-{number}-metrics", daemon=True)
            worker.reader.start()

    def _read(self, worker: _Worker) -> None:
        while True:
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                return
            if message[0] == "metrics":
                _apply(self._metrics, message[1])
            elif message[0] == "stopped":
                return

    def stop(self) -> None:
        """Ask every worker to stop, wait for it (ending it if it does not)."""
        for worker in self._workers:
            with contextlib.suppress(OSError):  # already gone
                worker.conn.send(("stop",))
        for worker in self._workers:
            worker.process.join(30)
            if worker.process.is_alive():
                log.warning("DIMSE worker %s did not stop; ending it", worker.process.name)
                worker.process.terminate()
                worker.process.join(10)
            if worker.reader is not None:
                worker.reader.join(5)
            worker.conn.close()
        self._workers = []
