"""The append-only audit log of access to patient data.

Every read of patient data — a UI page, a JSON API answer, a DICOMweb response, a DIMSE
retrieve — is recorded with who (a user name, or the calling AE title of a DIMSE peer),
when, what (an action name and the Study Instance UID), from where (the client address),
to where when the data went elsewhere (a C-MOVE's destination AE title) and the outcome
(allowed or denied, with the HTTP or DIMSE status). Denied attempts are recorded too.
The fields follow the IHE ATNA audit message (RFC 3881 / DICOM PS3.15 Annex A.5: Active
Participant, Participant Object, Event Outcome).

Study UIDs are kept here, in a table only auditors and admins may read, and never in
log lines. The table is append-only: this module adds rows and reads them, nothing
else, and the database itself refuses UPDATE and DELETE (triggers installed by
migration 0004).
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session

from radai.auth.models import AuditEntry
from radai.db import Database, utcnow

_T = TypeVar("_T")


class Outcome(enum.StrEnum):
    """Whether the access was granted."""

    ALLOWED = "allowed"
    DENIED = "denied"


class ActorKind(enum.StrEnum):
    """What kind of party the actor is."""

    USER = "user"
    #: A DIMSE peer, named by its calling AE title.
    AE = "ae"
    #: A request without valid credentials.
    ANONYMOUS = "anonymous"


#: Actor name of requests without valid credentials.
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class AuditFilter:
    """Which audit rows to read; every field that is set must match."""

    actor: str | None = None
    action: str | None = None
    study_uid: str | None = None
    outcome: Outcome | None = None
    client: str | None = None
    destination: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def record_access(target: Session | Database, *, actor: str, action: str,
                  study_uid: str | Iterable[str] | None, client: str | None,
                  outcome: Outcome | str, status: int | None = None,
                  actor_kind: ActorKind | str = ActorKind.USER,
                  destination: str | None = None) -> None:
    """Append audit rows: one per study in ``study_uid`` (or one without a study).

    ``target`` is a :class:`Database` (the rows are committed in their own transaction,
    so a denied or failed request still leaves its trace) or an open session (the rows
    commit or roll back with the caller's transaction). ``action`` is a short name
    such as ``dicomweb.wado.instance`` or ``dimse.c-move`` — never patient data.
    ``destination`` names where the data was sent when that is not ``client``.
    """
    outcome = Outcome(outcome)
    kind = ActorKind(actor_kind)
    if not actor or len(actor) > 64:
        raise ValueError("audit actor must be 1-64 characters")
    if not action or len(action) > 128:
        raise ValueError("audit action must be 1-128 characters")
    if study_uid is None or isinstance(study_uid, str):
        uids: list[str | None] = [study_uid]
    else:
        uids = list(dict.fromkeys(study_uid))
        if not uids:
            return
    for uid in uids:
        if uid is not None and (not uid or len(uid) > 64):
            raise ValueError("audit study_uid must be a UID of 1-64 characters")
    now = utcnow()
    rows = [{"at": now, "actor": actor, "actor_kind": kind.value, "action": action,
             "study_uid": uid, "client": (client or "")[:64], "outcome": outcome.value,
             "status": status, "destination": (destination or "")[:64] or None} for uid in uids]
    if isinstance(target, Database):
        with target.transaction() as session:
            session.execute(insert(AuditEntry), rows)
    else:
        target.execute(insert(AuditEntry), rows)


def _filtered(query: Select[_T], flt: AuditFilter) -> Select[_T]:
    if flt.actor is not None:
        query = query.where(AuditEntry.actor == flt.actor)
    if flt.action is not None:
        query = query.where(AuditEntry.action == flt.action)
    if flt.study_uid is not None:
        query = query.where(AuditEntry.study_uid == flt.study_uid)
    if flt.outcome is not None:
        query = query.where(AuditEntry.outcome == flt.outcome.value)
    if flt.client is not None:
        query = query.where(AuditEntry.client == flt.client)
    if flt.destination is not None:
        query = query.where(AuditEntry.destination == flt.destination)
    if flt.since is not None:
        query = query.where(AuditEntry.at >= flt.since)
    if flt.until is not None:
        query = query.where(AuditEntry.at < flt.until)
    return query


def query_audit(session: Session, *, flt: AuditFilter, limit: int,
                offset: int) -> tuple[int, list[AuditEntry]]:
    """The total number of matching rows and one page of them, newest first."""
    total = session.scalar(_filtered(select(func.count()).select_from(AuditEntry), flt)) or 0
    rows = session.scalars(_filtered(select(AuditEntry), flt)
                           .order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    return total, list(rows)


#: Columns of the export; ``destination`` came last (later) so older readers keep their order.
CSV_COLUMNS = ("id", "at", "actor", "actor_kind", "action", "study_uid", "client", "outcome",
               "status", "destination")


def _cell(value: object) -> str:
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    # A cell starting with = + - @ is run as a formula by spreadsheet programs (CSV
    # injection); a leading apostrophe keeps it text. Actors and actions can come from
    # outside (AE titles, user names).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(db: Database, *, flt: AuditFilter, batch: int = 1000) -> Iterator[str]:
    """CSV text (RFC 4180) of the matching rows, oldest first, produced batch by batch."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    last_id = 0
    while True:
        with db.session() as session:
            rows = list(session.scalars(_filtered(select(AuditEntry), flt)
                                        .where(AuditEntry.id > last_id)
                                        .order_by(AuditEntry.id).limit(batch)))
        if not rows:
            return
        buf.seek(0)
        buf.truncate()
        for row in rows:
            writer.writerow([_cell(getattr(row, c)) for c in CSV_COLUMNS])
        last_id = rows[-1].id
        yield buf.getvalue()
