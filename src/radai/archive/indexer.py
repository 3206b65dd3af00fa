"""Writes instances into the SQL index, several per transaction.

Receivers (C-STORE handlers, STOW-RS, import) hand an :class:`IndexEntry` to the
:class:`Indexer` and wait for its commit before they acknowledge: an acknowledged
instance is in the index. The indexer thread takes every entry waiting at that moment
(up to the batch size) into one transaction, so parallel associations share commits.
Rows are created with ``INSERT … ON CONFLICT DO NOTHING``, so several radai processes
on one PostgreSQL can index the same study at once, and a re-sent instance is
recognised as a duplicate by its SOP Instance UID.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Patient, Series, Study
from radai.db import Database, utcnow

log = logging.getLogger(__name__)


class IndexOutcome(enum.Enum):
    """What indexing did with an entry."""

    STORED = "stored"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class IndexEntry:
    """One instance to index (its file is already written)."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    attributes: dict[str, Any]
    relative_path: str
    size_bytes: int
    sha256: str
    source: str
    source_ae_title: str = ""
    received_at: datetime = field(default_factory=utcnow)


def patient_key(attributes: dict[str, Any], study_instance_uid: str) -> str:
    """The key that groups studies into one patient: issuer and Patient ID.

    Studies without a Patient ID each get a patient of their own, rather than all
    such studies being merged into one anonymous patient.
    """
    pid = attributes.get("patient_id", "")
    if pid:
        raw = f"pid\\{attributes.get('issuer_of_patient_id', '')}\\{pid}"
    else:
        raw = f"study\\{study_instance_uid}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class Indexer:
    """Batches index writes in a background thread; see the module docstring."""

    def __init__(self, db: Database, *, batch_size: int = 64) -> None:
        self._db = db
        self._batch_size = batch_size
        self._queue: queue.Queue[tuple[IndexEntry, Future[IndexOutcome]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the indexing thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="radai-indexer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Index what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def submit(self, entry: IndexEntry) -> Future[IndexOutcome]:
        """Queue an entry; the future completes once its transaction has committed."""
        fut: Future[IndexOutcome] = Future()
        if self._thread is None:
            try:
                fut.set_result(self.index_now([entry])[0])
            except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                fut.set_exception(exc)
            return fut
        self._queue.put((entry, fut))
        return fut

    def index_now(self, entries: Sequence[IndexEntry]) -> list[IndexOutcome]:
        """Index ``entries`` in one transaction, in this thread."""
        with self._db.transaction() as session:
            return index_batch(session, entries)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self._batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            self._commit(batch)

    def _commit(self, batch: list[tuple[IndexEntry, Future[IndexOutcome]]]) -> None:
        try:
            outcomes = self.index_now([e for e, _ in batch])
        except Exception:  # noqa: BLE001 - isolate the entry that fails, below
            log.warning("index batch of %d failed; indexing its entries one by one", len(batch))
            for entry, fut in batch:
                try:
                    fut.set_result(self.index_now([entry])[0])
                except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                    fut.set_exception(exc)
            return
        for (_, fut), outcome in zip(batch, outcomes, strict=True):
            fut.set_result(outcome)


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def index_batch(session: Session, entries: Sequence[IndexEntry]) -> list[IndexOutcome]:
    """Index entries inside the caller's transaction; returns an outcome per entry."""
    insert = _insert(session)
    uids = [e.sop_instance_uid for e in entries]
    known = set(session.scalars(select(Instance.sop_instance_uid)
                                .where(Instance.sop_instance_uid.in_(uids))))
    outcomes: list[IndexOutcome] = []
    studies: dict[str, int] = {}
    series_pks: dict[str, int] = {}
    now = utcnow()
    for entry in entries:
        if entry.sop_instance_uid in known:
            outcomes.append(IndexOutcome.DUPLICATE)
            continue
        study_pk = studies.get(entry.study_instance_uid)
        if study_pk is None:
            study_pk = _study(session, insert, entry)
            studies[entry.study_instance_uid] = study_pk
        series_pk = series_pks.get(entry.series_instance_uid)
        if series_pk is None:
            series_pk = _series(session, insert, entry, study_pk)
            series_pks[entry.series_instance_uid] = series_pk
        a = entry.attributes
        inserted = session.execute(
            insert(Instance).values(
                sop_instance_uid=entry.sop_instance_uid,
                sop_class_uid=entry.sop_class_uid,
                series_pk=series_pk,
                instance_number=a.get("instance_number"),
                transfer_syntax_uid=entry.transfer_syntax_uid,
                rows=a.get("rows"),
                columns=a.get("columns"),
                bits_allocated=a.get("bits_allocated"),
                number_of_frames=a.get("number_of_frames"),
                content_date=a.get("content_date", ""),
                content_time=a.get("content_time", ""),
                path=entry.relative_path,
                size_bytes=entry.size_bytes,
                sha256=entry.sha256,
                source=entry.source,
                source_ae_title=entry.source_ae_title,
                received_at=entry.received_at,
            ).on_conflict_do_nothing(index_elements=["sop_instance_uid"])
            .returning(Instance.id)
        ).scalar_one_or_none()
        known.add(entry.sop_instance_uid)
        if inserted is None:  # another process indexed it first
            outcomes.append(IndexOutcome.DUPLICATE)
            continue
        session.execute(update(Series).where(Series.id == series_pk)
                        .values(number_of_instances=Series.number_of_instances + 1))
        session.execute(update(Study).where(Study.id == study_pk).values(
            number_of_instances=Study.number_of_instances + 1,
            change_seq=Study.change_seq + 1,
            last_received_at=now,
        ))
        outcomes.append(IndexOutcome.STORED)
    return outcomes


def _study(session: Session, insert: Any, entry: IndexEntry) -> int:
    a = entry.attributes
    existing = session.scalar(select(Study.id)
                              .where(Study.study_instance_uid == entry.study_instance_uid))
    if existing is not None:
        return existing
    key = patient_key(a, entry.study_instance_uid)
    session.execute(insert(Patient).values(
        patient_key=key,
        patient_id=a.get("patient_id", ""),
        issuer_of_patient_id=a.get("issuer_of_patient_id", ""),
        patient_name=a.get("patient_name", ""),
        patient_birth_date=a.get("patient_birth_date", ""),
        patient_sex=a.get("patient_sex", ""),
        created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["patient_key"]))
    patient_pk = session.scalar(select(Patient.id).where(Patient.patient_key == key))
    now = utcnow()
    session.execute(insert(Study).values(
        study_instance_uid=entry.study_instance_uid,
        patient_pk=patient_pk,
        study_date=a.get("study_date", ""),
        study_time=a.get("study_time", ""),
        accession_number=a.get("accession_number", ""),
        study_id=a.get("study_id", ""),
        study_description=a.get("study_description", ""),
        referring_physician_name=a.get("referring_physician_name", ""),
        patient_age=a.get("patient_age", ""),
        first_received_at=now,
        last_received_at=now,
    ).on_conflict_do_nothing(index_elements=["study_instance_uid"]))
    pk = session.scalar(select(Study.id).where(Study.study_instance_uid == entry.study_instance_uid))
    assert pk is not None
    return pk


def _series(session: Session, insert: Any, entry: IndexEntry, study_pk: int) -> int:
    a = entry.attributes
    existing = session.scalar(select(Series.id)
                              .where(Series.series_instance_uid == entry.series_instance_uid))
    if existing is not None:
        return existing
    created: int | None = session.execute(insert(Series).values(
        series_instance_uid=entry.series_instance_uid,
        study_pk=study_pk,
        modality=a.get("modality", ""),
        series_number=a.get("series_number"),
        series_description=a.get("series_description", ""),
        body_part_examined=a.get("body_part_examined", ""),
        view_position=a.get("view_position", ""),
        series_date=a.get("series_date", ""),
        series_time=a.get("series_time", ""),
        performed_procedure_step_start_date=a.get("performed_procedure_step_start_date", ""),
        performed_procedure_step_start_time=a.get("performed_procedure_step_start_time", ""),
        institution_name=a.get("institution_name", ""),
        manufacturer=a.get("manufacturer", ""),
        manufacturer_model_name=a.get("manufacturer_model_name", ""),
        station_name=a.get("station_name", ""),
        source_ae_title=entry.source_ae_title,
        created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["series_instance_uid"]).returning(Series.id)
    ).scalar_one_or_none()
    if created is None:
        pk = session.scalar(select(Series.id)
                            .where(Series.series_instance_uid == entry.series_instance_uid))
        assert pk is not None
        return pk
    modalities = sorted(m for m in session.scalars(
        select(Series.modality).where(Series.study_pk == study_pk).distinct()) if m)
    session.execute(update(Study).where(Study.id == study_pk).values(
        number_of_series=Study.number_of_series + 1,
        modalities_in_study="\\".join(modalities)[:256],
    ))
    return created
