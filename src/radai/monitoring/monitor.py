"""The monitoring component of ``radai serve``: evaluates every monitored model version
every ``monitoring.interval_seconds``.

One round (:meth:`Monitor.run_once`) profiles the inputs of newly ended tasks, evaluates
each monitored version (radai.monitoring.service), opens and closes alerts and suspends
versions where configured (radai.monitoring.alerts), then sends due webhook
notifications. Each step is idempotent and safe with several radai processes on one
database, so every process may run the component.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from radai.archive.storage import FileStorage
from radai.db import Database, utcnow
from radai.models.registry import ModelRegistry
from radai.monitoring.alerts import AlertChange, apply_checks, deliver_due, suspend_for
from radai.monitoring.profiles import profile_pending
from radai.monitoring.service import VersionReport, evaluate_version, monitored_versions
from radai.monitoring.settings import MonitoringSettings

log = logging.getLogger(__name__)


@dataclass
class RoundResult:
    """What one evaluation round did."""

    profiled: int = 0
    reports: list[VersionReport] = field(default_factory=list)
    changes: list[AlertChange] = field(default_factory=list)
    suspended: list[tuple[str, str]] = field(default_factory=list)
    notified: int = 0


class Monitor:
    """Periodic evaluation (a :class:`radai.app.Component`)."""

    name = "monitoring"

    def __init__(self, *, db: Database, storage: FileStorage, registry: ModelRegistry,
                 settings: MonitoringSettings, level: float = 0.95, dashboard_url: str | None = None) -> None:
        self.db = db
        self.storage = storage
        self.registry = registry
        self.settings = settings
        self.level = level
        self.dashboard_url = dashboard_url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._round_lock = threading.Lock()

    def run_once(self, now: datetime | None = None) -> RoundResult:
        """One full round: profile, evaluate, alert, suspend, notify."""
        with self._round_lock:
            result = RoundResult()
            # Profile everything ended so far (in batches), so that windows see every input.
            while not self._stop.is_set():
                n = profile_pending(self.db, self.storage, limit=self.settings.profile_batch)
                result.profiled += n
                if n < self.settings.profile_batch:
                    break
            now = now or utcnow()
            with self.db.session() as s:
                versions = monitored_versions(s, settings=self.settings, now=now)
            for model_id, version in versions:
                with self.db.session() as s:
                    report = evaluate_version(s, model_id=model_id, version=version, settings=self.settings,
                                              now=now, level=self.level)
                result.reports.append(report)
                changes = apply_checks(self.db, report, settings=self.settings, now=now)
                result.changes.extend(changes)
                result.suspended.extend(suspend_for(self.db, self.registry, changes, settings=self.settings))
            result.notified = self.deliver()
            return result

    def deliver(self) -> int:
        """Send the due webhook notifications; returns how many were sent."""
        return deliver_due(self.db, self.settings.webhook, dashboard_url=self.dashboard_url)

    def start(self) -> None:
        """Start the evaluation thread (the first round runs at once)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="radai-monitoring", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current round."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("monitoring round failed")
            self._stop.wait(self.settings.interval_seconds)
