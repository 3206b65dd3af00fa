"""The dataset library: create datasets, collect studies and labels in a draft, freeze it.

Functions are keyword-only and take a session; the caller owns the transaction. Every
change goes to a *draft* version: a frozen version is refused with
:class:`FrozenVersion` here, and the database refuses it too (migration 0008's
triggers). New data makes a new version: :func:`start_draft` copies the newest frozen
version's studies and labels into the next number.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from radai.archive.models import Study
from radai.archive.query import ATTRIBUTES, Level, Match, QueryError, build
from radai.archive.storage import FileStorage
from radai.datasets.card import REQUIRED_TEXT, TEXT_FIELDS, TEXT_TITLES
from radai.datasets.manifest import build_manifest, canonical_json, sha256_text, study_facts
from radai.datasets.models import (
    Dataset,
    DatasetLabel,
    DatasetStudy,
    DatasetVersion,
    LabelValue,
    VersionState,
)
from radai.db import utcnow

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_KEY = re.compile(r"^S(\d{4,15})$")
_CODE_PART = re.compile(r"^[^\\:\s][^\\]*$")


class DatasetError(ValueError):
    """A dataset operation that cannot be done; the message says why (never with patient data)."""


class DatasetNotFound(LookupError):
    """No dataset (or version) of that name (and number)."""


class DatasetExists(DatasetError):
    """A dataset of that name exists already."""


class FrozenVersion(DatasetError):
    """The version is frozen and cannot change."""


@dataclass(frozen=True)
class CodeRef:
    """A coded finding (PS3.3 §8.8): Coding Scheme Designator, Code Value, Code Meaning."""

    scheme: str
    value: str
    meaning: str

    def __post_init__(self) -> None:
        parts = (("Coding Scheme Designator", self.scheme, 16), ("Code Value", self.value, 64),
                 ("Code Meaning", self.meaning, 64))
        for name, text, limit in parts:
            if not text or len(text) > limit or not _CODE_PART.match(text):
                raise DatasetError(f"{name} must be 1-{limit} characters without backslash")

    @property
    def ref(self) -> str:
        """``SCHEME:VALUE``."""
        return f"{self.scheme}:{self.value}"


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` → (name, version number or None)."""
    name, sep, number = ref.strip().partition("@")
    if not sep:
        return name, None
    if not number.isdigit() or int(number) < 1:
        raise DatasetError("a dataset version is a whole number from 1 (NAME@VERSION)")
    return name, int(number)


def parse_code(text: str) -> tuple[str, str]:
    """``SCHEME:VALUE`` (e.g. ``SCT:233604007``) → (scheme, value)."""
    scheme, sep, value = text.strip().partition(":")
    if not sep or not scheme or not value:
        raise DatasetError("a finding code is written SCHEME:VALUE, e.g. SCT:233604007")
    return scheme, value


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise DatasetError("a dataset name is 1-64 lower-case letters, digits, '.', '-' or '_', "
                           "starting with a letter or digit")
    return name


# --- datasets and versions -----------------------------------------------------------------


def create_dataset(session: Session, *, name: str, actor: str, description: str = "",
                   card: Mapping[str, str] | None = None) -> DatasetVersion:
    """A new dataset with its first version, a draft; DatasetError if the name is taken."""
    _check_name(name)
    if session.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
        raise DatasetExists(f"a dataset named {name} exists already")
    now = utcnow()
    dataset = Dataset(name=name, description=description.strip(), created_at=now, created_by=actor)
    session.add(dataset)
    session.flush()
    version = DatasetVersion(dataset_pk=dataset.id, number=1, state=VersionState.DRAFT.value,
                             created_at=now, created_by=actor, **_card_text(card or {}))
    session.add(version)
    session.flush()
    return version


def _card_text(card: Mapping[str, str | None]) -> dict[str, str]:
    unknown = sorted(set(card) - set(TEXT_FIELDS))
    if unknown:
        raise DatasetError(f"the dataset card has no field {unknown[0]}")
    return {k: v.strip() for k, v in card.items() if v is not None}


def list_datasets(session: Session) -> list[Dataset]:
    """Every dataset, by name."""
    return list(session.scalars(select(Dataset).order_by(Dataset.name)))


def get_dataset(session: Session, *, name: str) -> Dataset:
    """The dataset called ``name``; DatasetNotFound otherwise."""
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        raise DatasetNotFound(f"no dataset {name}")
    return dataset


def get_version(session: Session, *, name: str, number: int | None = None) -> DatasetVersion:
    """Version ``number`` of a dataset (the newest when None); DatasetNotFound otherwise."""
    dataset = get_dataset(session, name=name)
    q = select(DatasetVersion).where(DatasetVersion.dataset_pk == dataset.id)
    q = q.where(DatasetVersion.number == number) if number is not None else q.order_by(
        DatasetVersion.number.desc()).limit(1)
    version = session.scalar(q)
    if version is None:
        raise DatasetNotFound(f"no version {number} of dataset {name}")
    return version


def latest_frozen(session: Session, *, name: str) -> DatasetVersion:
    """The newest frozen version of a dataset; DatasetNotFound when none is frozen."""
    dataset = get_dataset(session, name=name)
    version = session.scalar(select(DatasetVersion).where(
        DatasetVersion.dataset_pk == dataset.id, DatasetVersion.state == VersionState.FROZEN.value)
        .order_by(DatasetVersion.number.desc()).limit(1))
    if version is None:
        raise DatasetNotFound(f"dataset {name} has no frozen version yet")
    return version


def require_draft(version: DatasetVersion) -> DatasetVersion:
    """``version`` if it may change; FrozenVersion (saying how to go on) otherwise."""
    if version.frozen:
        name = version.dataset.name
        raise FrozenVersion(f"{name}@{version.number} is frozen and cannot change; start version "
                            f"{version.number + 1} from it with `radai datasets draft {name}`")
    return version


def draft_of(session: Session, *, name: str, number: int | None = None) -> DatasetVersion:
    """The version to change: ``number`` or the newest; FrozenVersion if it is frozen."""
    return require_draft(get_version(session, name=name, number=number))


def start_draft(session: Session, *, name: str, actor: str) -> DatasetVersion:
    """The next version of a dataset as a draft copy of its newest version (which must be frozen)."""
    newest = get_version(session, name=name)
    if not newest.frozen:
        raise DatasetError(f"{name}@{newest.number} is still a draft; change it, or freeze it first")
    now = utcnow()
    draft = DatasetVersion(dataset_pk=newest.dataset_pk, number=newest.number + 1,
                           state=VersionState.DRAFT.value, created_at=now, created_by=actor,
                           **{f: getattr(newest, f) for f in TEXT_FIELDS})
    session.add(draft)
    session.flush()
    for entry in newest.studies:
        copy = DatasetStudy(version_pk=draft.id, study_pk=entry.study_pk, key=entry.key,
                            added_at=entry.added_at)
        session.add(copy)
        session.flush()
        for lab in entry.labels:
            session.add(DatasetLabel(
                version_pk=draft.id, entry_pk=copy.id, code_value=lab.code_value, code_scheme=lab.code_scheme,
                code_meaning=lab.code_meaning, value=lab.value, method=lab.method,
                established_by=lab.established_by, recorded_at=lab.recorded_at, recorded_by=lab.recorded_by))
    session.flush()
    session.refresh(draft)
    return draft


def set_card(session: Session, *, version: DatasetVersion, description: str | None = None,
             **text: str | None) -> DatasetVersion:
    """Change the text of a draft's dataset card (None leaves a field as it is)."""
    require_draft(version)
    for field, value in _card_text(text).items():
        setattr(version, field, value)
    if description is not None:
        version.dataset.description = description.strip()
    session.flush()
    return version


# --- studies ---------------------------------------------------------------------------------


def find_studies(session: Session, *, matches: Sequence[Match]) -> list[int]:
    """Index keys of the studies matching every key (PS3.4 §C.2.2.2 matching, as QIDO-RS).

    Study, patient and series attributes may be combined (e.g. Modality=CR and
    BodyPartExamined=CHEST find studies with a chest CR series). An attribute the index
    does not hold is refused rather than matched universally, which would take every study.
    """
    if not matches:
        raise DatasetError("give at least one matching key, e.g. Modality=CR")
    level = Level.STUDY
    for m in matches:
        attr = ATTRIBUTES.get(m.keyword)
        if attr is None or attr.column is None:
            raise DatasetError(f"{m.keyword} is not an attribute radai can match studies on")
        if attr.level == Level.IMAGE:
            raise DatasetError(f"{m.keyword} is an instance attribute; match on study or series attributes")
        level = max(level, attr.level)
    try:
        stmt = build(level, matches)
    except QueryError as exc:
        raise DatasetError(str(exc)) from None
    sub = stmt.order_by(None).with_only_columns(Study.id).distinct().subquery()
    return list(session.scalars(select(sub.c.id).order_by(sub.c.id)))


def study_pks_for_uids(session: Session, uids: Sequence[str]) -> list[int]:
    """Index keys of the studies with these Study Instance UIDs, in the given order.

    DatasetError naming the position (1-based) of the first UID that is not archived.
    """
    wanted = [u.strip() for u in uids]
    found = dict(session.execute(select(Study.study_instance_uid, Study.id)
                                 .where(Study.study_instance_uid.in_(set(wanted)))).all())
    for i, uid in enumerate(wanted, start=1):
        if uid not in found:
            raise DatasetError(f"entry {i}: Study Instance UID (0020,000D) is not in the archive")
    return [found[u] for u in wanted]


def read_uid_file(path: Path) -> list[str]:
    """Study Instance UIDs from a text file: one per line; blank lines and ``#`` comments skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({type(exc).__name__})") from None
    uids = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if len(line) > 64 or not re.fullmatch(r"[0-9]+(\.[0-9]+)*", line):
            raise DatasetError(f"{path}: line {line_no}: not a Study Instance UID "
                               "(digits and dots, 64 at most)")
        uids.append(line)
    if not uids:
        raise DatasetError(f"{path}: holds no Study Instance UID")
    return uids


@dataclass(frozen=True)
class Added:
    """What adding studies did: the keys given to new studies, and how many were there already."""

    keys: list[str]
    already: int


def add_studies(session: Session, *, version: DatasetVersion, study_pks: Sequence[int]) -> Added:
    """Add archived studies to a draft; studies already in it are counted, not added twice."""
    require_draft(version)
    present = set(session.scalars(select(DatasetStudy.study_pk).where(DatasetStudy.version_pk == version.id)))
    number = _last_key_number(session, version.dataset_pk)
    keys, already = [], 0
    now = utcnow()
    for pk in dict.fromkeys(study_pks):
        if pk in present:
            already += 1
            continue
        number += 1
        key = f"S{number:04d}"
        session.add(DatasetStudy(version_pk=version.id, study_pk=pk, key=key, added_at=now))
        keys.append(key)
    session.flush()
    session.expire(version, ["studies"])
    return Added(keys, already)


def _last_key_number(session: Session, dataset_pk: int) -> int:
    # Keys are never reused within a dataset, so a key names one study in every version.
    keys = session.scalars(select(DatasetStudy.key).join(DatasetVersion)
                           .where(DatasetVersion.dataset_pk == dataset_pk))
    numbers = [int(m.group(1)) for k in keys if (m := _KEY.match(k))]
    return max(numbers, default=0)


def entry_for(session: Session, *, version: DatasetVersion, study: str) -> DatasetStudy:
    """A study of the version, named by its dataset key (``S0001``) or its Study Instance UID."""
    ref = study.strip()
    q = select(DatasetStudy).where(DatasetStudy.version_pk == version.id)
    if _KEY.match(ref):
        q = q.where(DatasetStudy.key == ref)
    else:
        q = q.join(Study, Study.id == DatasetStudy.study_pk).where(Study.study_instance_uid == ref)
    entry = session.scalar(q)
    if entry is None:
        what = f"study {ref}" if _KEY.match(ref) else "the study with this Study Instance UID"
        raise DatasetError(f"{what} is not in {version.dataset.name}@{version.number}")
    return entry


def remove_studies(session: Session, *, version: DatasetVersion, studies: Sequence[str]) -> int:
    """Take studies (keys or UIDs) and their labels out of a draft; returns how many."""
    require_draft(version)
    entries = [entry_for(session, version=version, study=s) for s in studies]
    for entry in entries:
        for lab in list(entry.labels):
            session.delete(lab)
        session.delete(entry)
    session.flush()
    session.expire(version, ["studies"])
    return len(entries)


# --- labels -----------------------------------------------------------------------------------


def known_meaning(session: Session, *, dataset_pk: int, scheme: str, value: str) -> str | None:
    """The Code Meaning a dataset already uses for a code, if any."""
    return session.scalar(select(DatasetLabel.code_meaning).join(
        DatasetVersion, DatasetVersion.id == DatasetLabel.version_pk).where(
        DatasetVersion.dataset_pk == dataset_pk, DatasetLabel.code_scheme == scheme,
        DatasetLabel.code_value == value).limit(1))


def code_for(session: Session, *, version: DatasetVersion, code: str, meaning: str | None) -> CodeRef:
    """A CodeRef from ``SCHEME:VALUE`` and a meaning (or the one the dataset already uses)."""
    scheme, value = parse_code(code)
    text = (meaning or "").strip() or known_meaning(session, dataset_pk=version.dataset_pk, scheme=scheme,
                                                    value=value)
    if not text:
        raise DatasetError(f"finding {scheme}:{value} is new to this dataset: give its Code Meaning")
    return CodeRef(scheme, value, text)


def set_label(session: Session, *, version: DatasetVersion, study: str, code: CodeRef,
              value: LabelValue | str, method: str, established_by: str, actor: str) -> DatasetLabel:
    """Record (or replace) the label of one finding in one study of a draft."""
    require_draft(version)
    try:
        label_value = LabelValue(str(value).strip().lower())
    except ValueError:
        raise DatasetError("a label is present, absent or uncertain") from None
    method, established_by = method.strip(), established_by.strip()
    if not method or len(method) > 128:
        raise DatasetError("a label needs its method (how it was established), 1-128 characters")
    if len(established_by) > 128:
        raise DatasetError("who established a label is at most 128 characters")
    entry = entry_for(session, version=version, study=study)
    label = session.scalar(select(DatasetLabel).where(
        DatasetLabel.entry_pk == entry.id, DatasetLabel.code_scheme == code.scheme,
        DatasetLabel.code_value == code.value))
    if label is None:
        label = DatasetLabel(version_pk=version.id, entry_pk=entry.id, code_scheme=code.scheme,
                             code_value=code.value)
        session.add(label)
    label.code_meaning = code.meaning
    label.value = label_value.value
    label.method = method
    label.established_by = established_by
    label.recorded_at = utcnow()
    label.recorded_by = actor
    session.flush()
    return label


# --- freezing ---------------------------------------------------------------------------------


def freeze(session: Session, *, version: DatasetVersion, storage: FileStorage, actor: str) -> DatasetVersion:
    """Freeze a draft: check it, write its manifest and card, and make it immutable.

    Refused (DatasetError naming what is missing) when the card lacks its purpose,
    source, inclusion criteria or label method, when the version has no study, when a
    study has no label or no instance, or when a stored file no longer has the SHA-256
    the index recorded for it.
    """
    require_draft(version)
    name = version.dataset.name
    for field in REQUIRED_TEXT:
        if not getattr(version, field).strip():
            raise DatasetError(f"{name}@{version.number}: the dataset card needs its "
                               f"{TEXT_TITLES[field].lower()} before it is frozen")
    entries = list(session.scalars(select(DatasetStudy).where(DatasetStudy.version_pk == version.id)
                                   .order_by(DatasetStudy.key)))
    if not entries:
        raise DatasetError(f"{name}@{version.number} has no studies")
    facts = study_facts(session, [e.study_pk for e in entries])
    for entry in entries:
        if not entry.labels:
            raise DatasetError(f"study {entry.key} of {name}@{version.number} has no label")
        if not facts[entry.study_pk].instances:
            raise DatasetError(f"study {entry.key} of {name}@{version.number} has no stored instance")
        for inst in facts[entry.study_pk].instances:
            if file_sha256(storage.path(inst.path)) != inst.sha256:
                raise DatasetError(f"study {entry.key}: a stored file differs from the SHA-256 "
                                   "the archive recorded for it")
    now = utcnow()
    document = build_manifest(version=version, entries=entries, facts=facts, frozen_at=now, frozen_by=actor)
    text = canonical_json(document)
    version.manifest = text
    version.manifest_sha256 = sha256_text(text)
    version.frozen_at = now
    version.frozen_by = actor
    version.state = VersionState.FROZEN.value
    session.flush()
    return version


def file_sha256(path: Path) -> str | None:
    """SHA-256 (hex) of a file, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def study_count(session: Session, *, version_pk: int) -> int:
    """Studies in a version."""
    return int(session.scalar(select(func.count()).select_from(DatasetStudy)
                              .where(DatasetStudy.version_pk == version_pk)) or 0)


def content_problem(session: Session, *, storage: FileStorage, study: Mapping[str, object]) -> str | None:
    """Why the archive no longer holds exactly what a manifest entry lists (None when it does).

    ``study`` is one entry of a manifest's ``studies``. The stored files are hashed again,
    so a file changed on disk is found even when the index was not told.
    """
    pk = session.scalar(select(Study.id).where(Study.study_instance_uid == study["study_instance_uid"]))
    if pk is None:
        return "the study is no longer in the archive"
    stored = {i.sop_instance_uid: i for i in study_facts(session, [pk])[pk].instances}
    listed = study["instances"]
    assert isinstance(listed, list)
    wanted = {str(i["sop_instance_uid"]): str(i["sha256"]) for i in listed}
    missing = len(set(wanted) - set(stored))
    if missing:
        return f"{missing} instance(s) of the frozen version are no longer in the archive"
    extra = len(set(stored) - set(wanted))
    if extra:
        return f"the study has {extra} instance(s) more than the frozen version"
    for uid, sha in wanted.items():
        if file_sha256(storage.path(stored[uid].path)) != sha:
            return "a stored file differs from the SHA-256 in the manifest"
    return None
