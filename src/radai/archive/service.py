"""Storing instances: the one path every receiver (DIMSE, STOW-RS, import, results) uses.

``store`` checks the instance, writes its bytes as received, indexes it and returns
only once the index has committed. Anything refused raises :class:`Rejection`;
nothing is left half-stored: a file whose indexing failed is removed again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from radai.archive.indexer import IndexEntry, Indexer, IndexOutcome
from radai.archive.models import Instance, Series, Study
from radai.archive.parse import ParsedInstance, Rejection, RejectReason, parse_instance
from radai.archive.storage import FileStorage, StorageFullError
from radai.db import Database
from radai.logs import uid_ref
from radai.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreOutcome:
    """A stored (or already present) instance."""

    outcome: IndexOutcome
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str


class Archive:
    """Instance files plus their index."""

    def __init__(self, *, db: Database, storage: FileStorage, indexer: Indexer,
                 metrics: Metrics | None = None) -> None:
        self.db = db
        self.storage = storage
        self.indexer = indexer
        self.metrics = metrics or Metrics()

    def store(self, data: bytes, *, source: str, source_ae_title: str = "",
              expected_sop_instance_uid: str | None = None,
              expected_sop_class_uid: str | None = None,
              transfer_syntax_uid: str | None = None) -> StoreOutcome:
        """Check, write and index one instance given as PS3.10 bytes (or a bare dataset).

        ``transfer_syntax_uid`` is the transfer syntax of a bare dataset when the caller
        knows it (a C-STORE data set: its presentation context's); the stored file then
        gets radai's File Meta Information (see :func:`parse_instance`).
        Raises :class:`Rejection` when it is refused; the reason maps to a DIMSE status
        and to a STOW-RS failure reason.
        """
        try:
            parsed = parse_instance(data, expected_sop_instance_uid=expected_sop_instance_uid,
                                    expected_sop_class_uid=expected_sop_class_uid,
                                    transfer_syntax_uid=transfer_syntax_uid)
            outcome = self._store_parsed(parsed, source=source, source_ae_title=source_ae_title)
        except Rejection as rej:
            self.metrics.instances_rejected.labels(source=source, reason=rej.reason.name).inc()
            log.warning("refused an instance from %s: %s", source, rej.message)
            raise
        self.metrics.instances_received.labels(source=source, outcome=outcome.outcome.value).inc()
        return outcome

    def _store_parsed(self, parsed: ParsedInstance, *, source: str,
                      source_ae_title: str) -> StoreOutcome:
        sha = hashlib.sha256(parsed.data).hexdigest()
        try:
            written = self.storage.write(parsed.sop_instance_uid, parsed.data, sha,
                                         lambda: self.contains(parsed.sop_instance_uid))
        except StorageFullError:
            raise Rejection(RejectReason.OUT_OF_RESOURCES, "archive storage is full") from None
        except OSError:
            log.exception("could not write instance %s", uid_ref(parsed.sop_instance_uid))
            raise Rejection(RejectReason.OUT_OF_RESOURCES, "archive storage cannot be written") from None
        entry = IndexEntry(
            sop_class_uid=parsed.sop_class_uid,
            sop_instance_uid=parsed.sop_instance_uid,
            study_instance_uid=parsed.study_instance_uid,
            series_instance_uid=parsed.series_instance_uid,
            transfer_syntax_uid=parsed.transfer_syntax_uid,
            attributes=parsed.attributes,
            relative_path=written.relative_path,
            size_bytes=len(parsed.data),
            sha256=sha,
            source=source,
            source_ae_title=source_ae_title,
        )
        try:
            outcome = self.indexer.submit(entry).result()
        except Exception:
            log.exception("could not index instance %s", uid_ref(parsed.sop_instance_uid))
            if written.created:
                self.storage.delete(written.relative_path)
            raise Rejection(RejectReason.PROCESSING_FAILURE,
                            "the archive index could not be updated") from None
        return StoreOutcome(outcome, parsed.sop_class_uid, parsed.sop_instance_uid,
                            parsed.study_instance_uid, parsed.series_instance_uid)

    def contains(self, sop_instance_uid: str) -> bool:
        """Whether an instance with this SOP Instance UID is stored."""
        with self.db.session() as s:
            return s.scalar(select(Instance.id)
                            .where(Instance.sop_instance_uid == sop_instance_uid)) is not None

    def instance_path(self, sop_instance_uid: str) -> Path | None:
        """Absolute path of a stored instance's file, or None."""
        with self.db.session() as s:
            rel = s.scalar(select(Instance.path).where(Instance.sop_instance_uid == sop_instance_uid))
        return None if rel is None else self.storage.path(rel)

    def read(self, sop_instance_uid: str) -> bytes:
        """The stored bytes of an instance; KeyError if it is not stored."""
        path = self.instance_path(sop_instance_uid)
        if path is None:
            raise KeyError(sop_instance_uid)
        return path.read_bytes()

    def study_instances(self, study_instance_uid: str) -> list[Instance]:
        """Every instance of a study, by series then instance number."""
        with self.db.session() as s:
            return list(s.scalars(
                select(Instance).join(Series).join(Study)
                .where(Study.study_instance_uid == study_instance_uid)
                .order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id)
            ))


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Every regular file below the given files and folders, in a stable order."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not child.name.startswith("."):
                    yield child
        else:
            yield path
