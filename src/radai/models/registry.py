"""The model registry: which model versions exist, where their packages are, their state.

Packages come from three places, all registered by :meth:`ModelRegistry.sync` at
start-up: the built-in packages under ``radai/models/builtin/``, packages installed as
Python distributions that declare an entry point in the group ``radai.models``, and
packages copied into ``<data_dir>/models/<id>/<version>/`` by ``radai models import``.
The database row keeps the validated manifest and the lifecycle state; every state
change is recorded with its reason and actor. Only LIVE versions get clinical studies.

Loading is lazy, cached and thread-safe: the first :meth:`ModelRegistry.load` of a
version builds its runtime (which may take seconds, or build a cached file at first
use); later calls return the same object.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from radai.db import Database, utcnow
from radai.models.api import DefectCategory, LoadedModel, ModelDefect
from radai.models.manifest import LifecycleState, Manifest, ManifestError, load_manifest, parse_manifest
from radai.models.models import ModelStateChange, ModelVersion

if TYPE_CHECKING:
    from radai.config import Settings

log = logging.getLogger(__name__)

#: Entry point group through which installed distributions offer model packages. The
#: entry point names a module (its folder holds ``model.yaml``) or a callable returning
#: the package folder.
ENTRY_POINT_GROUP = "radai.models"

S = LifecycleState
#: Allowed lifecycle transitions. A model reaches LIVE only from APPROVED (after
#: validation) or back from SUSPENDED; RETIRED is final.
TRANSITIONS: dict[LifecycleState, frozenset[LifecycleState]] = {
    S.DRAFT: frozenset({S.VALIDATED, S.RETIRED}),
    S.VALIDATED: frozenset({S.APPROVED, S.DRAFT, S.RETIRED}),
    S.APPROVED: frozenset({S.LIVE, S.VALIDATED, S.RETIRED}),
    S.LIVE: frozenset({S.SUSPENDED, S.RETIRED}),
    S.SUSPENDED: frozenset({S.LIVE, S.DRAFT, S.RETIRED}),
    S.RETIRED: frozenset(),
}

Origin = Literal["builtin", "installed", "imported"]


class ModelNotFound(LookupError):
    """No registered model with this id (and version)."""


class RegistryError(ValueError):
    """A registry operation that cannot be done (the message says why)."""


class InvalidTransition(RegistryError):
    """A lifecycle change the state machine does not allow."""


@dataclass(frozen=True)
class ModelRecord:
    """A registered model version."""

    model_id: str
    version: str
    state: LifecycleState
    manifest: Manifest
    #: Folder of the package.
    source: str
    #: ``builtin``, ``installed`` or ``imported``.
    origin: str = "builtin"
    registered_at: datetime | None = None
    state_changed_at: datetime | None = None

    @property
    def ref(self) -> str:
        """``id@version``."""
        return f"{self.model_id}@{self.version}"


@dataclass(frozen=True)
class StateChange:
    """One entry of a model version's lifecycle history."""

    from_state: str
    to_state: str
    reason: str
    actor: str
    changed_at: datetime


@dataclass(frozen=True)
class _Found:
    manifest: Manifest
    folder: Path
    origin: Origin


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``ID`` or ``ID@VERSION`` → (id, version or None)."""
    model_id, _, version = ref.partition("@")
    return model_id.strip(), (version.strip() or None)


def builtin_packages_dir() -> Path:
    """The folder holding the built-in packages (one subfolder each)."""
    return Path(str(files("radai.models") / "builtin"))


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


class ModelRegistry:
    """Registered model versions, their lifecycle, and loaded models."""

    def __init__(self, *, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str, str], threading.Lock] = {}
        self._loaded: dict[tuple[str, str, str], tuple[str, LoadedModel]] = {}

    @property
    def packages_dir(self) -> Path:
        """Where imported packages are kept."""
        return self.settings.models.packages_dir or self.settings.data_dir / "models"

    # --- registration -------------------------------------------------------------

    def sync(self) -> None:
        """Register built-in, installed and imported packages; idempotent.

        A version seen for the first time starts in its manifest's lifecycle state; a
        known version keeps its state and gets the current manifest and location.
        """
        found = list(self._discover())
        for item in found:
            self._upsert(item)
        log.info("model registry: %d packages found", len(found))

    def _discover(self) -> Iterator[_Found]:
        if self.settings.models.builtin:
            for folder in sorted(builtin_packages_dir().iterdir()):
                if (folder / "model.yaml").is_file():
                    # A broken built-in package is radai's own defect: fail loudly.
                    yield _Found(load_manifest(folder / "model.yaml"), folder, "builtin")
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                folder = _entry_point_folder(ep.load())
                yield _Found(load_manifest(folder / "model.yaml"), folder, "installed")
            except (ManifestError, ImportError, OSError, TypeError, AttributeError) as exc:
                log.error("model package of entry point %r is not registered: %s", ep.name, exc)
        if self.packages_dir.is_dir():
            for yaml_path in sorted(self.packages_dir.glob("*/*/model.yaml")):
                try:
                    yield _Found(load_manifest(yaml_path), yaml_path.parent, "imported")
                except ManifestError as exc:
                    log.error("imported model package is not registered: %s", exc)

    def _upsert(self, item: _Found) -> None:
        m = item.manifest
        text = json.dumps(m.to_json_dict(), sort_keys=True)
        sha = hashlib.sha256(text.encode()).hexdigest()
        for attempt in range(2):
            try:
                with self.db.transaction() as s:
                    row = self._row(s, m.id, m.version)
                    if row is None:
                        self._insert(s, m, text, sha, str(item.folder.resolve()), item.origin,
                                     m.lifecycle.state)
                    elif row.manifest_sha256 != sha or row.source != str(item.folder.resolve()):
                        if row.manifest_sha256 != sha:
                            log.warning("model %s: manifest changed without a new version", m.ref)
                        row.manifest, row.manifest_sha256 = text, sha
                        row.source, row.origin = str(item.folder.resolve()), item.origin
                        row.name, row.vendor, row.licence = m.name, m.vendor, m.licence
                        row.updated_at = utcnow()
                return
            except IntegrityError:
                # Another process registered it at the same moment; read it again.
                if attempt:
                    raise

    def _insert(self, s: Session, m: Manifest, text: str, sha: str, source: str, origin: Origin,
                state: LifecycleState) -> ModelVersion:
        now = utcnow()
        row = ModelVersion(model_id=m.id, version=m.version, state=state.value, origin=origin,
                           source=source, name=m.name, vendor=m.vendor, licence=m.licence,
                           manifest=text, manifest_sha256=sha, registered_at=now, updated_at=now,
                           state_changed_at=now)
        s.add(row)
        s.flush()
        s.add(ModelStateChange(model_pk=row.id, from_state="", to_state=state.value,
                               reason=f"registered ({origin})", actor="radai", changed_at=now))
        return row

    def import_package(self, path: Path) -> ModelRecord:
        """Validate the package at ``path`` and copy it to ``<packages_dir>/<id>/<version>/``.

        Raises :class:`ManifestError` (naming the field) for an invalid package and
        :class:`RegistryError` when the version is already registered. An imported
        package starts as draft or validated: it goes live through the lifecycle.
        """
        folder = path if path.is_dir() else path.parent
        m = load_manifest(folder / "model.yaml")
        check_package_files(m, folder)
        if m.lifecycle.state not in (S.DRAFT, S.VALIDATED):
            raise ManifestError(f"model.yaml: lifecycle.state: an imported package starts as draft or "
                                f"validated, not {m.lifecycle.state.value}")
        with self.db.session() as s:
            if self._row(s, m.id, m.version) is not None:
                raise RegistryError(f"model {m.ref} is already registered; give the package a new version")
        target = self.packages_dir / m.id / m.version
        if target.exists():
            raise RegistryError(f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copy next to the target and rename, so that a failed copy leaves nothing behind.
        tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=target.parent))
        try:
            shutil.copytree(folder, tmp, dirs_exist_ok=True)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        text = json.dumps(m.to_json_dict(), sort_keys=True)
        sha = hashlib.sha256(text.encode()).hexdigest()
        try:
            with self.db.transaction() as s:
                self._insert(s, m, text, sha, str(target.resolve()), "imported", m.lifecycle.state)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return self.get(m.id, m.version)

    # --- queries --------------------------------------------------------------------

    @staticmethod
    def _row(s: Session, model_id: str, version: str) -> ModelVersion | None:
        return s.scalar(select(ModelVersion).where(ModelVersion.model_id == model_id,
                                                   ModelVersion.version == version))

    @staticmethod
    def _record(row: ModelVersion) -> ModelRecord:
        manifest = parse_manifest(json.loads(row.manifest), where=f"{row.model_id}@{row.version}")
        return ModelRecord(model_id=row.model_id, version=row.version, state=LifecycleState(row.state),
                           manifest=manifest, source=row.source, origin=row.origin,
                           registered_at=row.registered_at, state_changed_at=row.state_changed_at)

    def list(self) -> list[ModelRecord]:
        """Every registered version, by id then newest version first."""
        with self.db.session() as s:
            rows = list(s.scalars(select(ModelVersion)))
        rows.sort(key=lambda r: _version_key(r.version), reverse=True)
        rows.sort(key=lambda r: r.model_id)
        return [self._record(r) for r in rows]

    def get(self, model_id: str, version: str | None = None) -> ModelRecord:
        """One version; the newest registered version when ``version`` is None."""
        with self.db.session() as s:
            if version is not None:
                row = self._row(s, model_id, version)
            else:
                rows = list(s.scalars(select(ModelVersion).where(ModelVersion.model_id == model_id)))
                row = max(rows, key=lambda r: _version_key(r.version)) if rows else None
        if row is None:
            raise ModelNotFound(f"no model {model_id}@{version}" if version else f"no model {model_id}")
        return self._record(row)

    def live(self) -> builtins.list[ModelRecord]:
        """The LIVE versions: the only ones clinical studies are routed to."""
        with self.db.session() as s:
            rows = list(s.scalars(select(ModelVersion).where(ModelVersion.state == S.LIVE.value)
                                  .order_by(ModelVersion.model_id, ModelVersion.version)))
        return [self._record(r) for r in rows]

    def history(self, model_id: str, version: str) -> builtins.list[StateChange]:
        """The lifecycle history of a version, oldest first."""
        with self.db.session() as s:
            row = self._row(s, model_id, version)
            if row is None:
                raise ModelNotFound(f"no model {model_id}@{version}")
            return [StateChange(c.from_state, c.to_state, c.reason, c.actor, c.changed_at)
                    for c in row.changes]

    # --- lifecycle ------------------------------------------------------------------

    def set_state(self, model_id: str, version: str, state: LifecycleState, *, reason: str,
                  actor: str) -> ModelRecord:
        """Move a version to ``state`` if :data:`TRANSITIONS` allows it, and record why.

        Setting the state it already has changes nothing. Raises
        :class:`InvalidTransition` otherwise, :class:`ModelNotFound` for an unknown version.
        """
        state = LifecycleState(state)
        if not reason.strip():
            raise RegistryError("a state change needs a reason")
        if not actor.strip():
            raise RegistryError("a state change needs an actor")
        with self.db.transaction() as s:
            row = s.scalar(select(ModelVersion).where(ModelVersion.model_id == model_id,
                                                      ModelVersion.version == version)
                           .with_for_update())
            if row is None:
                raise ModelNotFound(f"no model {model_id}@{version}")
            current = LifecycleState(row.state)
            if current != state:
                if state not in TRANSITIONS[current]:
                    allowed = ", ".join(sorted(t.value for t in TRANSITIONS[current])) or "none"
                    raise InvalidTransition(
                        f"model {model_id}@{version} cannot go from {current.value} to {state.value} "
                        f"(allowed from {current.value}: {allowed})")
                now = utcnow()
                row.state, row.state_changed_at = state.value, now
                s.add(ModelStateChange(model_pk=row.id, from_state=current.value, to_state=state.value,
                                       reason=reason.strip(), actor=actor.strip(), changed_at=now))
                log.info("model %s@%s: %s -> %s by %s", model_id, version, current.value,
                         state.value, actor)
        return self.get(model_id, version)

    # --- loading --------------------------------------------------------------------

    def load(self, model_id: str, version: str, *,
             runtime: Literal["onnx", "torch"] | None = None) -> LoadedModel:
        """The version ready to run (built on first use, then cached; thread-safe).

        ``runtime`` forces ONNX Runtime or PyTorch for an ONNX package (default: the
        ``models.onnx_packages_run_on`` setting). Raises
        ``ModelDefect(SERVICE_UNAVAILABLE)`` when the model cannot be loaded.
        """
        try:
            record = self.get(model_id, version)
        except ModelNotFound:
            raise ModelDefect(DefectCategory.SERVICE_UNAVAILABLE,
                              f"model {model_id}@{version} is not registered") from None
        from radai.models.loader import choose_runtime, load_model

        kind = runtime or choose_runtime(record.manifest, self.settings.models)
        key = (model_id, version, kind)
        sha = hashlib.sha256(json.dumps(record.manifest.to_json_dict(), sort_keys=True).encode()).hexdigest()
        with self._lock:
            cached = self._loaded.get(key)
            if cached is not None and cached[0] == sha:
                return cached[1]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                cached = self._loaded.get(key)
                if cached is not None and cached[0] == sha:
                    return cached[1]
            model = load_model(record, self.settings, runtime=kind)
            with self._lock:
                self._loaded[key] = (sha, model)
            return model

    def unload_all(self) -> None:
        """Forget every loaded model (their memory is freed when no task holds them)."""
        with self._lock:
            self._loaded.clear()


def _entry_point_folder(obj: object) -> Path:
    if isinstance(obj, ModuleType):
        if obj.__file__ is None:
            raise TypeError("the entry point's module has no file")
        return Path(obj.__file__).parent
    if callable(obj):
        obj = obj()
    if isinstance(obj, str | Path):
        return Path(obj)
    raise TypeError("the entry point must name a module or a callable returning a folder")


def check_package_files(m: Manifest, folder: Path) -> None:
    """Raise ManifestError if a file the manifest names is missing or outside the package."""
    from radai.models.loader import resolve_file

    for field, name in (("runtime.file", m.runtime.file),
                        ("runtime.source.file", m.runtime.source.file if m.runtime.source else None)):
        if name is None:
            continue
        if m.runtime.source is not None and field == "runtime.file":
            continue  # built at first use
        try:
            resolve_file(name, folder)
        except FileNotFoundError as exc:
            raise ManifestError(f"model.yaml: {field}: {exc}") from None
