"""Task listeners: how other parts (result objects, the worklist) learn that a task ended.

A task *ends* when it becomes ``done`` (with its findings) or a ``defect`` (a study
with a technical defect still reaches the worklist). Listeners are registered on the
:class:`TaskEventHub` that radai owns (``radai.task_events``) before ``radai serve``
starts its workers, in one of two phases:

``Phase.IN_TRANSACTION``
    Called with the session of the transaction that ends the task, after the task row
    and its findings are written and before the commit. What the listener writes
    commits atomically with the task; if it raises, nothing commits and the attempt
    counts as failed (``service_unavailable``), so the task is tried again. Use it for
    rows that must exist exactly when the task is done (e.g. an outbox entry, a
    worklist row). Keep it quick: on SQLite the write lock is held meanwhile.

``Phase.AFTER_COMMIT``
    Called after the commit, in the worker's thread, with no session. An exception is
    logged and does not change the task. A crash between the commit and the call loses
    the call, so use it only for work that is safe to miss or is recovered elsewhere
    (waking a delivery thread, metrics, notifications).

A listener hears only tasks of the purposes it registered for, clinical tasks by
default: validation tasks (radai.quality validation runs) must not make result objects,
deliveries to PACS or worklist entries, so only listeners that ask for
``TaskPurpose.VALIDATION`` hear of them.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy.orm import Session

from radai.inference.models import TaskPurpose

log = logging.getLogger(__name__)


class Phase(enum.StrEnum):
    """When a task listener runs; see the module docstring."""

    IN_TRANSACTION = "in_transaction"
    AFTER_COMMIT = "after_commit"


@dataclass(frozen=True)
class TaskEvent:
    """A task that ended."""

    task_id: int
    #: ``done`` or ``defect``.
    state: str
    study_pk: int
    study_instance_uid: str
    series_pk: int | None
    model_id: str
    model_version: str
    #: Findings written by the task (empty for a defect).
    finding_ids: tuple[int, ...] = ()
    #: For a defect: its category and the reason (no patient data).
    defect_category: str | None = None
    reason: str = ""
    #: ``clinical`` or ``validation`` (:class:`radai.inference.models.TaskPurpose`).
    purpose: str = TaskPurpose.CLINICAL.value


#: Listener of :attr:`Phase.IN_TRANSACTION`.
TransactionListener = Callable[[Session, TaskEvent], None]
#: Listener of :attr:`Phase.AFTER_COMMIT`.
CommitListener = Callable[[TaskEvent], None]


class TaskEventHub:
    """Registered task listeners (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_tx: list[tuple[TransactionListener, frozenset[str]]] = []
        self._after: list[tuple[CommitListener, frozenset[str]]] = []

    def add_task_listener(self, listener: TransactionListener | CommitListener, *,
                          phase: Phase = Phase.AFTER_COMMIT,
                          purposes: Collection[TaskPurpose] = (TaskPurpose.CLINICAL,)) -> None:
        """Register ``listener`` for every task of ``purposes`` (clinical by default) that ends.

        ``Phase.IN_TRANSACTION`` listeners take ``(session, event)``;
        ``Phase.AFTER_COMMIT`` listeners take ``(event)``.
        """
        heard = frozenset(TaskPurpose(p).value for p in purposes)
        with self._lock:
            if Phase(phase) is Phase.IN_TRANSACTION:
                self._in_tx.append((listener, heard))  # type: ignore[arg-type]
            else:
                self._after.append((listener, heard))  # type: ignore[arg-type]

    def in_transaction(self, session: Session, event: TaskEvent) -> None:
        """Run the in-transaction listeners; an exception propagates (rolls back)."""
        with self._lock:
            listeners = [listener for listener, heard in self._in_tx if event.purpose in heard]
        for listener in listeners:
            listener(session, event)

    def after_commit(self, event: TaskEvent) -> None:
        """Run the after-commit listeners; exceptions are logged."""
        with self._lock:
            listeners = [listener for listener, heard in self._after if event.purpose in heard]
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("task listener %s failed for task %d",
                              getattr(listener, "__qualname__", "?"), event.task_id)
