"""Study stability: a study is *stable* once no instance arrived for a quiet time.

Each new instance increments the study's ``change_seq``. The monitor looks for studies
with ``stable_seq < change_seq`` whose last instance is older than the quiet time, and
for each sets ``stable_seq = change_seq`` with a conditional UPDATE, which succeeds for
one process only. Listeners (routing) run in that same transaction, so the event and
what it causes (task rows) commit together or not at all: the event fires once per
change, also across restarts and across several radai processes on one database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from radai.archive.models import Study
from radai.background import PollingThread
from radai.db import Database, utcnow
from radai.logs import uid_ref
from radai.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StableStudy:
    """The study a stability event is about."""

    study_pk: int
    study_instance_uid: str
    #: The study's change sequence number the event covers.
    change_seq: int


#: Called inside the event's transaction; raising rolls the event back (it fires again).
StabilityListener = Callable[[Session, StableStudy], None]


class StabilityMonitor(PollingThread):
    """Fires stability events; see the module docstring."""

    thread_name = "radai-stability"

    def __init__(self, db: Database, *, quiet_seconds: float, poll_seconds: float = 1.0,
                 metrics: Metrics | None = None) -> None:
        super().__init__(poll_seconds)
        self._db = db
        self._quiet = timedelta(seconds=quiet_seconds)
        self._metrics = metrics
        self._listeners: list[StabilityListener] = []

    def add_listener(self, listener: StabilityListener) -> None:
        """Register a function to call for every stability event."""
        self._listeners.append(listener)

    def run_once(self) -> int:
        """One pass of the background thread: the number of events fired."""
        return len(self.check())

    def check(self) -> list[StableStudy]:
        """Fire the events that are due now; returns the studies that became stable."""
        cutoff = utcnow() - self._quiet
        with self._db.session() as s:
            due = list(s.execute(
                select(Study.id, Study.study_instance_uid).where(
                    Study.stable_seq < Study.change_seq, Study.last_received_at <= cutoff)
                .order_by(Study.last_received_at).limit(200)))
        fired = []
        for pk, uid in due:
            event = self._fire(pk, uid, cutoff)
            if event is not None:
                fired.append(event)
        return fired

    def _fire(self, pk: int, uid: str, cutoff: object) -> StableStudy | None:
        try:
            with self._db.transaction() as s:
                seq = s.scalar(select(Study.change_seq).where(Study.id == pk))
                claimed = s.execute(  # type: ignore[attr-defined]
                    update(Study)
                    .where(Study.id == pk, Study.stable_seq < Study.change_seq,
                           Study.change_seq == seq, Study.last_received_at <= cutoff)
                    .values(stable_seq=Study.change_seq, stable_at=utcnow())
                ).rowcount
                if claimed != 1 or seq is None:
                    return None
                event = StableStudy(pk, uid, seq)
                for listener in self._listeners:
                    listener(s, event)
        except Exception:
            log.exception("stability listener failed for study %s", uid_ref(uid))
            return None
        if self._metrics is not None:
            self._metrics.studies_stable.inc()
        log.info("study %s is stable (change %d)", uid_ref(uid), event.change_seq)
        return event
