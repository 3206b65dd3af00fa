"""Grants (which studies a vendor account may see) and the map from pseudonymous UIDs back
to the originals.

Grants are explicit: an administrator lists the studies each vendor account may see
(``POST /api/v1/vendor/grants``). Nothing else is visible in the vendor view, whatever
the vendor asks for; a study that is not granted answers exactly like one that does not
exist.

Pseudonymous UIDs are keyed HMACs of the originals (PS3.15 Annex E "U" action as done
by :class:`radai.deid.PseudonymKey`), which cannot be inverted. The view writes every
pseudonym it issues to ``vendor_uid_map`` and resolves incoming ones there; a pseudonym
missing from the map (issued before the map existed, or a study granted since) is
found by computing the pseudonyms of the candidates its place allows: the vendor's
granted studies, the series of one study, the instances of one series.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Series, Study
from radai.archive.parse import is_valid_uid
from radai.auth.models import User
from radai.auth.roles import Capability, Role, capabilities_of
from radai.db import Database, utcnow
from radai.deid.pseudonym import PseudonymKey
from radai.vendor.models import PseudonymousUid, VendorGrant

Level = Literal["study", "series", "instance"]

#: Rows per statement when pseudonyms are looked up or written in bulk.
_CHUNK = 500


class GrantError(ValueError):
    """A grant that cannot be made; the message names the field, never a patient value."""


class NoSuchUser(GrantError):
    """No account with that user name."""


class NoSuchGrant(GrantError):
    """The account holds no grant for that study."""


# --- grants ---------------------------------------------------------------------------


def _vendor_account(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NoSuchUser("no such user")
    roles = [Role(r.role) for r in user.roles]
    if Capability.VENDOR_VIEW not in capabilities_of(roles):
        raise GrantError("username: the account holds no role with the vendor_view capability "
                         "(give it the vendor role first)")
    return user


def grant_studies(session: Session, *, username: str, study_uids: Sequence[str],
                  granted_by: str) -> list[VendorGrant]:
    """Let a vendor account see ``study_uids`` (de-identified); returns its grants for them.

    Each study must be in the archive. Granting a study twice keeps the first grant.
    Raises :class:`NoSuchUser`, or :class:`GrantError` naming the list entry that is wrong.
    """
    user = _vendor_account(session, username)
    wanted = list(dict.fromkeys(u.strip() for u in study_uids))
    if not wanted:
        raise GrantError("study_instance_uids: give at least one Study Instance UID")
    for i, uid in enumerate(wanted):
        if not is_valid_uid(uid):
            raise GrantError(f"study_instance_uids[{i}] is not a valid UID")
    known = set(session.scalars(select(Study.study_instance_uid)
                                .where(Study.study_instance_uid.in_(wanted))))
    for i, uid in enumerate(wanted):
        if uid not in known:
            raise GrantError(f"study_instance_uids[{i}] is not a study in the archive")
    existing = {g.study_instance_uid: g for g in session.scalars(
        select(VendorGrant).where(VendorGrant.user_id == user.id,
                                  VendorGrant.study_instance_uid.in_(wanted)))}
    now = utcnow()
    out = []
    for uid in wanted:
        grant = existing.get(uid)
        if grant is None:
            grant = VendorGrant(user_id=user.id, study_instance_uid=uid, granted_by=granted_by,
                                granted_at=now)
            session.add(grant)
        out.append(grant)
    session.flush()
    return out


def dataset_studies(session: Session, *, dataset: str) -> list[str]:
    """The Study Instance UIDs of a dataset version (``NAME@VERSION``, or the newest frozen
    version of ``NAME``); :class:`GrantError` when there is no such version."""
    from radai.datasets import service as datasets
    from radai.datasets.models import DatasetStudy

    try:
        name, number = datasets.parse_ref(dataset)
        version = (datasets.get_version(session, name=name, number=number) if number is not None
                   else datasets.latest_frozen(session, name=name))
    except (datasets.DatasetError, datasets.DatasetNotFound) as exc:
        raise GrantError(f"dataset: {exc}") from None
    uids = list(session.scalars(select(Study.study_instance_uid)
                                .join(DatasetStudy, DatasetStudy.study_pk == Study.id)
                                .where(DatasetStudy.version_pk == version.id).order_by(DatasetStudy.id)))
    if not uids:
        raise GrantError("dataset: the version holds no study")
    return uids


def revoke_study(session: Session, *, username: str, study_uid: str) -> None:
    """Take a study away from a vendor account; :class:`NoSuchGrant` if it was not granted."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NoSuchUser("no such user")
    result = session.execute(delete(VendorGrant).where(VendorGrant.user_id == user.id,
                                                       VendorGrant.study_instance_uid == study_uid))
    if not getattr(result, "rowcount", 0):
        raise NoSuchGrant("the account holds no grant for that study")


def list_grants(session: Session, *, username: str | None = None) -> list[tuple[str, VendorGrant]]:
    """(user name, grant) pairs, by user name then grant time."""
    stmt = select(User.username, VendorGrant).join(User, VendorGrant.user_id == User.id)
    if username is not None:
        stmt = stmt.where(User.username == username)
    stmt = stmt.order_by(User.username, VendorGrant.id)
    return [(name, grant) for name, grant in session.execute(stmt).all()]


def granted_studies(session: Session, *, user_id: int) -> list[str]:
    """The original Study Instance UIDs a vendor account may see."""
    return list(session.scalars(select(VendorGrant.study_instance_uid)
                                .where(VendorGrant.user_id == user_id).order_by(VendorGrant.id)))


def is_granted(session: Session, *, user_id: int, study_uid: str) -> bool:
    """Whether the account may see the study."""
    return session.scalar(select(VendorGrant.id).where(VendorGrant.user_id == user_id,
                                                      VendorGrant.study_instance_uid == study_uid)
                          ) is not None


# --- pseudonyms -------------------------------------------------------------------------


class UnknownPseudonym(LookupError):
    """A UID that is no pseudonym this view issued (or could issue) for its place."""


class NotGranted(PermissionError):
    """The pseudonym names a real study the account may not see."""

    def __init__(self, study_uid: str) -> None:
        super().__init__("the study is not granted to this account")
        #: The original Study Instance UID, for the audit log only.
        self.study_uid = study_uid


def key_fingerprint(key: PseudonymKey) -> str:
    """A short fingerprint of the key that tells pseudonyms of different keys apart."""
    return key.digest("key-fingerprint", "radai vendor view")[:8].hex()


@dataclass(frozen=True)
class PseudonymMap:
    """Issues pseudonymous UIDs under one key and resolves them back (see the module docstring)."""

    db: Database
    key: PseudonymKey

    @property
    def key_id(self) -> str:
        """The key's fingerprint, stored with every pseudonym."""
        return key_fingerprint(self.key)

    def pseudonym(self, uid: str) -> str:
        """The pseudonymous UID of ``uid`` (the one the de-identification engine writes)."""
        return self.key.uid(uid)

    def remember(self, originals: Iterable[tuple[str, Level]]) -> None:
        """Record the pseudonyms of ``originals`` (UID, level) that the map does not hold yet."""
        rows = {self.pseudonym(uid): (uid, level) for uid, level in originals if uid}
        if not rows:
            return
        with self.db.session() as session:
            known = self._known(session, list(rows))
        missing = [{"key_id": self.key_id, "pseudonym": p, "original": uid, "level": level,
                    "created_at": utcnow()} for p, (uid, level) in rows.items() if p not in known]
        if not missing:
            return
        with self.db.transaction() as session:
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            for start in range(0, len(missing), _CHUNK):
                # Another request may issue the same pseudonym at the same moment.
                session.execute(insert(PseudonymousUid).on_conflict_do_nothing(),
                                missing[start:start + _CHUNK])

    def _known(self, session: Session, pseudonyms: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(pseudonyms), _CHUNK):
            known.update(session.scalars(
                select(PseudonymousUid.pseudonym).where(
                    PseudonymousUid.key_id == self.key_id,
                    PseudonymousUid.pseudonym.in_(pseudonyms[start:start + _CHUNK]))))
        return known

    def lookup(self, pseudonyms: Sequence[str], level: Level) -> dict[str, str]:
        """Pseudonym → original for the pseudonyms of ``level`` the map holds."""
        out: dict[str, str] = {}
        with self.db.session() as session:
            for start in range(0, len(pseudonyms), _CHUNK):
                rows = session.execute(
                    select(PseudonymousUid.pseudonym, PseudonymousUid.original).where(
                        PseudonymousUid.key_id == self.key_id, PseudonymousUid.level == level,
                        PseudonymousUid.pseudonym.in_(list(pseudonyms[start:start + _CHUNK]))))
                out.update({p: o for p, o in rows})
        return out

    def _resolve(self, pseudonym: str, level: Level, candidates: Iterable[str]) -> str:
        found = self.lookup([pseudonym], level).get(pseudonym)
        if found is not None:
            return found
        issued = [(uid, level) for uid in candidates]
        self.remember(issued)
        for uid, _ in issued:
            if self.pseudonym(uid) == pseudonym:
                return uid
        raise UnknownPseudonym(f"no such {level}")

    def resolve_study(self, pseudonym: str, *, user_id: int) -> str:
        """The original Study Instance UID of a pseudonym, checked against the account's grants.

        Raises :class:`UnknownPseudonym` or :class:`NotGranted`.
        """
        with self.db.session() as session:
            granted = granted_studies(session, user_id=user_id)
        original = self._resolve(pseudonym, "study", granted)
        if original not in granted:
            raise NotGranted(original)
        return original

    def resolve_series(self, pseudonym: str, *, study_uid: str) -> str:
        """The original Series Instance UID of a pseudonym, among the series of ``study_uid``."""
        with self.db.session() as session:
            candidates = list(session.scalars(
                select(Series.series_instance_uid).join(Study, Series.study_pk == Study.id)
                .where(Study.study_instance_uid == study_uid)))
        original = self._resolve(pseudonym, "series", candidates)
        if original not in candidates:
            raise UnknownPseudonym("no such series in the study")
        return original

    def resolve_instance(self, pseudonym: str, *, series_uid: str) -> str:
        """The original SOP Instance UID of a pseudonym, among the instances of ``series_uid``."""
        with self.db.session() as session:
            candidates = list(session.scalars(
                select(Instance.sop_instance_uid).join(Series, Instance.series_pk == Series.id)
                .where(Series.series_instance_uid == series_uid)))
        original = self._resolve(pseudonym, "instance", candidates)
        if original not in candidates:
            raise UnknownPseudonym("no such instance in the series")
        return original
