"""The delivery outbox: sends stored result objects to the configured destinations.

Each (object, destination) is a row (radai.results.models.Delivery), written with the
result. The :class:`Outbox` thread claims due rows per destination (with a lease, so
several radai processes share the work and a crashed one's rows come back), sends them
in batches — C-STORE over one association (radai.dimse.scu.send_files) or one STOW-RS
request (radai.results.stow) — and records every try. A failed try is retried after an
exponential backoff, without end unless ``results.max_attempts`` is set, so results
arrive once a destination is back, also after radai restarts: delivery is at least
once, and since result objects keep their SOP Instance UIDs a PACS stores each once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import httpx

from radai.archive.service import Archive
from radai.background import PollingThread
from radai.config import DimsePeer
from radai.db import Database
from radai.dimse.scu import SendReport, send_files
from radai.results.metrics import ResultsMetrics
from radai.results.service import (
    DeliveryClaim,
    DeliveryOutcome,
    claim_deliveries,
    record_outcomes,
    release_deliveries,
)
from radai.results.settings import DicomWebDestination, DimseDestination, ResultsSettings
from radai.results.stow import StowItem, stow

log = logging.getLogger(__name__)


class Outbox(PollingThread):
    """Delivers result objects in a background thread (component ``outbox``)."""

    name = "outbox"
    thread_name = "radai-outbox"

    def __init__(self, *, db: Database, archive: Archive, settings: ResultsSettings,
                 calling_ae_title: str, metrics: ResultsMetrics | None = None) -> None:
        self.db = db
        self.metrics = metrics
        self.archive = archive
        self.settings = settings
        self.calling_ae_title = calling_ae_title
        super().__init__(settings.poll_seconds)

    def run_once(self) -> int:
        """One pass: one batch per enabled destination; returns the number of tries made."""
        tried = 0
        for dest in self.settings.destinations:
            if self._stop.is_set():
                break
            if not dest.enabled:
                continue
            claims = claim_deliveries(self.db, destinations=[dest.name], limit=self.settings.batch_size,
                                      lease_seconds=self.settings.lease_seconds)
            if not claims:
                continue
            if self._stop.is_set():
                release_deliveries(self.db, claims=claims)
                break
            began = time.perf_counter()
            outcomes = self._send(dest, claims)
            if self.metrics is not None:
                self.metrics.delivery_seconds.labels(destination=dest.name).observe(
                    time.perf_counter() - began)
                for o in outcomes:
                    self.metrics.deliveries.labels(destination=dest.name,
                                                   outcome="delivered" if o.ok else "failed").inc()
            record_outcomes(self.db, outcomes=outcomes, max_attempts=self.settings.max_attempts,
                            retry_base_seconds=self.settings.retry_base_seconds,
                            retry_max_seconds=self.settings.retry_max_seconds)
            done = sum(o.ok for o in outcomes)
            log.info("outbox %s: %d of %d delivered", dest.name, done, len(outcomes))
            tried += len(outcomes)
        return tried

    def _send(self, dest: DimseDestination | DicomWebDestination,
              claims: Sequence[DeliveryClaim]) -> list[DeliveryOutcome]:
        started = time.perf_counter()
        present = [c for c in claims if self.archive.instance_path(c.sop_instance_uid) is not None]
        outcomes = [DeliveryOutcome(c, False, "the object is no longer in the archive", 0.0)
                    for c in claims if c not in present]
        if present:
            if isinstance(dest, DimseDestination):
                results = self._send_dimse(dest, present)
            else:
                results = self._send_stow(dest, present)
            elapsed = (time.perf_counter() - started) * 1000.0 / len(present)
            outcomes += [DeliveryOutcome(c, ok, detail, elapsed)
                         for c, (ok, detail) in zip(present, results, strict=True)]
        return outcomes

    def _send_dimse(self, dest: DimseDestination,
                    claims: Sequence[DeliveryClaim]) -> list[tuple[bool, str]]:
        paths = [self.archive.instance_path(c.sop_instance_uid) for c in claims]
        peer = DimsePeer(ae_title=dest.ae_title, host=dest.host, port=dest.port)
        report: SendReport = send_files(
            peer=peer, calling_ae=dest.calling_ae_title or self.calling_ae_title,
            paths=[p for p in paths if p is not None], timeout_seconds=self.settings.timeout_seconds)
        out = []
        for result in report.results:
            if result.ok:
                out.append((True, f"C-STORE status 0x{result.status:04X}"))
            elif result.status is not None:
                out.append((False, f"C-STORE status 0x{result.status:04X}"))
            else:
                out.append((False, report.association_error or "no C-STORE response"))
        return out

    def _send_stow(self, dest: DicomWebDestination,
                   claims: Sequence[DeliveryClaim]) -> list[tuple[bool, str]]:
        items = []
        for claim in claims:
            try:
                items.append(StowItem(claim.sop_instance_uid, self.archive.read(claim.sop_instance_uid)))
            except (KeyError, OSError):
                items.append(StowItem(claim.sop_instance_uid, b""))
        auth = dest.authorization.get_secret_value() if dest.authorization is not None else None
        try:
            with httpx.Client(timeout=self.settings.timeout_seconds) as client:
                outcomes = stow(client, base_url=dest.url, items=[i for i in items if i.data],
                                authorization=auth)
        except httpx.HTTPError as exc:
            return [(False, f"STOW-RS request failed ({type(exc).__name__})")] * len(claims)
        by_uid = {o.sop_instance_uid: (o.ok, o.detail) for o in outcomes}
        return [by_uid.get(c.sop_instance_uid, (False, "the object could not be read"))
                for c in claims]
