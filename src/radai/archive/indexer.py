"""Writes instances into the SQL index, several per transaction.

Receivers (C-STORE handlers, STOW-RS, import) hand an :class:`IndexEntry` to the
:class:`Indexer` and wait for its commit before they acknowledge: an acknowledged
instance is in the index. The indexer thread takes every entry waiting at that moment
(up to the batch size) into one transaction, so parallel associations share commits;
an entry that finds the indexer idle is committed in the caller's own thread.
Whoever commits uses the indexer's one database connection, kept open between
transactions (checking a pooled connection out and in, and an ORM session around it,
cost more than the statements of a one-instance transaction; measured on SQLite).
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
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Patient, Series, Study
from radai.db import Database, UTCDateTime, utcnow

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
        # Held by whoever is committing: one index transaction at a time, on _conn.
        self._committing = threading.Lock()
        # SQLite: take the write lock at BEGIN (as Database.transaction does), so that
        # writers in other processes wait for it rather than fail to upgrade a read lock.
        self._engine: Engine = (db.engine.execution_options(sqlite_begin="IMMEDIATE")
                                if db.is_sqlite else db.engine)
        self._conn: Connection | None = None

    def start(self) -> None:
        """Start the indexing thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="radai-indexer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Index what is queued, then stop the thread and close the connection."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        with self._committing:
            self._close_connection()

    def submit(self, entry: IndexEntry) -> Future[IndexOutcome]:
        """Queue an entry; the future completes once its transaction has committed.

        When no commit is under way and nothing waits, the entry is committed at once in
        the caller's thread: a lone sender (one association) then pays no hand-over to
        the indexing thread and back. Entries that arrive during a commit wait in the
        queue and go together in the next one.
        """
        fut: Future[IndexOutcome] = Future()
        if self._thread is None:
            with self._committing:
                self._commit([(entry, fut)])
            return fut
        if self._queue.empty() and self._committing.acquire(blocking=False):
            try:
                self._commit([(entry, fut)])
            finally:
                self._committing.release()
            return fut
        self._queue.put((entry, fut))
        return fut

    def index_now(self, entries: Sequence[IndexEntry]) -> list[IndexOutcome]:
        """Index ``entries`` in one transaction, in this thread."""
        with self._committing:
            return self._index(entries)

    def _index(self, entries: Sequence[IndexEntry]) -> list[IndexOutcome]:
        # Called holding _committing.
        if self._conn is None:
            self._conn = self._engine.connect()
        try:
            with self._conn.begin():
                return index_batch(self._conn, entries)
        except Exception:
            # The connection may be what failed (database restarted, file gone): the
            # next transaction starts on a fresh one.
            self._close_connection()
            raise

    def _close_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - a broken connection is dropped all the same
                log.warning("index connection could not be closed cleanly")
            self._conn = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            with self._committing:
                # Taken once the commit slot is free: what queued up meanwhile joins in.
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
        # Called holding _committing.
        try:
            outcomes = self._index([e for e, _ in batch])
        except Exception:  # noqa: BLE001 - isolate the entry that fails, below
            if len(batch) > 1:
                log.warning("index batch of %d failed; indexing its entries one by one", len(batch))
            for entry, fut in batch:
                try:
                    fut.set_result(self._index([entry])[0])
                except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                    fut.set_exception(exc)
            return
        for (_, fut), outcome in zip(batch, outcomes, strict=True):
            fut.set_result(outcome)


def index_batch(target: Connection | Session, entries: Sequence[IndexEntry]) -> list[IndexOutcome]:
    """Index entries inside the caller's transaction; returns an outcome per entry.

    A batch costs a fixed handful of statements whatever its size (a lookup of its
    series with their studies, one multi-row insert of its instances, one counter
    update per series and study touched), which is what lets parallel associations
    share commits. An instance already indexed, or repeated within the batch, is a
    duplicate.
    """
    conn = target.connection() if isinstance(target, Session) else target
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    outcomes: list[IndexOutcome] = [IndexOutcome.DUPLICATE] * len(entries)
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        first.setdefault(entry.sop_instance_uid, i)
    new = [entries[i] for i in first.values()]
    series_pks, study_pks = _existing_series(conn, {e.series_instance_uid for e in new})
    missing = {e.study_instance_uid for e in new} - study_pks.keys()
    study_pks.update(_existing(conn, _STUDIES.c.study_instance_uid, missing))
    for entry in new:
        if entry.study_instance_uid not in study_pks:
            study_pks[entry.study_instance_uid] = _study(conn, insert, entry)
        if entry.series_instance_uid not in series_pks:
            series_pks[entry.series_instance_uid] = _series(
                conn, insert, entry, study_pks[entry.study_instance_uid])
    rows = [_instance_row(e, series_pks[e.series_instance_uid]) for e in new]
    # Rows another process indexed first are not returned: they are duplicates here.
    inserted = (set(conn.execute(_insert_instances(conn.dialect.name), _params(rows)).scalars())
                if rows else set())
    per_series: dict[int, int] = {}
    per_study: dict[int, int] = {}
    for entry in new:
        if entry.sop_instance_uid in inserted:
            outcomes[first[entry.sop_instance_uid]] = IndexOutcome.STORED
            series_pk = series_pks[entry.series_instance_uid]
            study_pk = study_pks[entry.study_instance_uid]
            per_series[series_pk] = per_series.get(series_pk, 0) + 1
            per_study[study_pk] = per_study.get(study_pk, 0) + 1
    if per_series:
        conn.execute(_COUNT_SERIES, _params([{"b_pk": pk, "b_n": n} for pk, n in per_series.items()]))
    if per_study:
        now = utcnow()
        conn.execute(_COUNT_STUDY, _params([{"b_pk": pk, "b_n": n, "b_now": now}
                                            for pk, n in per_study.items()]))
    return outcomes


# The ingest path runs the same few statements for every batch. They are built once, so
# that SQLAlchemy finds them in its compiled cache without rebuilding cache keys, and run
# as Core statements, which skip the ORM's per-row bookkeeping.
_INSTANCES = cast(Table, Instance.__table__)
_SERIES = cast(Table, Series.__table__)
_STUDIES = cast(Table, Study.__table__)
_COUNT_SERIES = (update(_SERIES).where(_SERIES.c.id == bindparam("b_pk"))
                 .values(number_of_instances=_SERIES.c.number_of_instances + bindparam("b_n")))
_COUNT_STUDY = (update(_STUDIES).where(_STUDIES.c.id == bindparam("b_pk")).values(
    number_of_instances=_STUDIES.c.number_of_instances + bindparam("b_n"),
    change_seq=_STUDIES.c.change_seq + bindparam("b_n"),
    last_received_at=bindparam("b_now", type_=UTCDateTime()),
))
_LOOKUP_ONE = {col: select(col.table.c.id, col).where(col == bindparam("b_uid"))
               for col in (_STUDIES.c.study_instance_uid, _SERIES.c.series_instance_uid)}
_SERIES_WITH_STUDY = select(_SERIES.c.series_instance_uid, _SERIES.c.id,
                            _STUDIES.c.study_instance_uid, _STUDIES.c.id).join_from(
    _SERIES, _STUDIES, _SERIES.c.study_pk == _STUDIES.c.id)
_SERIES_WITH_STUDY_ONE = _SERIES_WITH_STUDY.where(_SERIES.c.series_instance_uid == bindparam("b_uid"))
_SERIES_WITH_STUDY_MANY = _SERIES_WITH_STUDY.where(
    _SERIES.c.series_instance_uid.in_(bindparam("b_uids", expanding=True)))
_INSERT_INSTANCES: dict[str, Any] = {}


def _insert_instances(dialect: str) -> Any:
    stmt = _INSERT_INSTANCES.get(dialect)
    if stmt is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (insert(_INSTANCES).on_conflict_do_nothing(index_elements=["sop_instance_uid"])
                .returning(_INSTANCES.c.sop_instance_uid))
        _INSERT_INSTANCES[dialect] = stmt
    return stmt


def _params(rows: list[dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    """One row's parameters as such: a list makes SQLAlchemy take its executemany path,
    which costs more for the single row of a one-association batch."""
    return rows[0] if len(rows) == 1 else rows


def _existing_series(conn: Connection, uids: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Primary keys of the series among ``uids`` that exist already, and of their studies.

    One statement for both: once a study has its first series, its instances need no
    lookup of the study of their own.
    """
    if not uids:
        return {}, {}
    if len(uids) == 1:  # the common case of one association
        result = conn.execute(_SERIES_WITH_STUDY_ONE, {"b_uid": next(iter(uids))})
    else:
        result = conn.execute(_SERIES_WITH_STUDY_MANY, {"b_uids": sorted(uids)})
    series: dict[str, int] = {}
    studies: dict[str, int] = {}
    for series_uid, series_pk, study_uid, study_pk in result:
        series[series_uid] = series_pk
        studies[study_uid] = study_pk
    return series, studies


def _existing(conn: Connection, column: Any, uids: set[str]) -> dict[str, int]:
    """UID → primary key of the rows of ``column``'s table that exist already."""
    if not uids:
        return {}
    if len(uids) == 1:  # the common case of one association: no expanding IN to render
        result = conn.execute(_LOOKUP_ONE[column], {"b_uid": next(iter(uids))})
    else:
        result = conn.execute(select(column.table.c.id, column).where(column.in_(uids)))
    return {uid: pk for pk, uid in result}


def _instance_row(entry: IndexEntry, series_pk: int) -> dict[str, Any]:
    a = entry.attributes
    return {
        "sop_instance_uid": entry.sop_instance_uid,
        "sop_class_uid": entry.sop_class_uid,
        "series_pk": series_pk,
        "instance_number": a.get("instance_number"),
        "transfer_syntax_uid": entry.transfer_syntax_uid,
        "rows": a.get("rows"),
        "columns": a.get("columns"),
        "bits_allocated": a.get("bits_allocated"),
        "number_of_frames": a.get("number_of_frames"),
        "content_date": a.get("content_date", ""),
        "content_time": a.get("content_time", ""),
        "path": entry.relative_path,
        "size_bytes": entry.size_bytes,
        "sha256": entry.sha256,
        "source": entry.source,
        "source_ae_title": entry.source_ae_title,
        "received_at": entry.received_at,
    }


def _study(conn: Connection, insert: Any, entry: IndexEntry) -> int:
    a = entry.attributes
    existing = conn.scalar(select(Study.id)
                           .where(Study.study_instance_uid == entry.study_instance_uid))
    if existing is not None:
        return existing
    key = patient_key(a, entry.study_instance_uid)
    conn.execute(insert(Patient).values(
        patient_key=key,
        patient_id=a.get("patient_id", ""),
        issuer_of_patient_id=a.get("issuer_of_patient_id", ""),
        patient_name=a.get("patient_name", ""),
        patient_birth_date=a.get("patient_birth_date", ""),
        patient_sex=a.get("patient_sex", ""),
        created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["patient_key"]))
    patient_pk = conn.scalar(select(Patient.id).where(Patient.patient_key == key))
    now = utcnow()
    conn.execute(insert(Study).values(
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
    pk = conn.scalar(select(Study.id).where(Study.study_instance_uid == entry.study_instance_uid))
    assert pk is not None
    return pk


def _series(conn: Connection, insert: Any, entry: IndexEntry, study_pk: int) -> int:
    a = entry.attributes
    existing = conn.scalar(select(Series.id)
                           .where(Series.series_instance_uid == entry.series_instance_uid))
    if existing is not None:
        return existing
    created: int | None = conn.execute(insert(Series).values(
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
        pk = conn.scalar(select(Series.id)
                         .where(Series.series_instance_uid == entry.series_instance_uid))
        assert pk is not None
        return pk
    modalities = sorted(m for m in conn.scalars(
        select(Series.modality).where(Series.study_pk == study_pk).distinct()) if m)
    conn.execute(update(Study).where(Study.id == study_pk).values(
        number_of_series=Study.number_of_series + 1,
        modalities_in_study="\\".join(modalities)[:256],
    ))
    return created
