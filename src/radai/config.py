"""Typed settings: one ``radai.toml`` plus ``RADAI_*`` environment variables.

Settings are validated when they are loaded; an invalid value raises
:class:`ConfigError` naming the setting, and ``radai serve`` stops there.
Environment variables win over the file. Nested settings use ``__`` in
environment variable names, e.g. ``RADAI_ARCHIVE__STABILITY_SECONDS=2``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from radai.auth.settings import AuthSettings
from radai.datasets.settings import DatasetsSettings
from radai.deid.settings import DeidSettings
from radai.dicomweb.settings import DicomWebSettings
from radai.inference.settings import InferenceSettings
from radai.models.settings import ModelsSettings
from radai.monitoring.settings import MonitoringSettings
from radai.quality.settings import QualitySettings
from radai.results.settings import ResultsSettings
from radai.routing.settings import RoutingSettings
from radai.vendor.settings import VendorSettings
from radai.viewer.settings import ViewerSettings
from radai.worklist.settings import WorklistSettings

#: AE titles: 1-16 characters of the default character repertoire, no backslash,
#: no control characters, not all spaces (PS3.5 Table 6.2-1, AE value representation).
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


class ConfigError(ValueError):
    """An invalid setting; the message names the setting and what is wrong."""


def _check_ae_title(value: str) -> str:
    if not _AE_TITLE.match(value) or not value.strip():
        raise ValueError("must be 1-16 printable ASCII characters without backslash")
    return value.strip()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DimsePeer(_Section):
    """A remote DICOM node radai may connect to (C-MOVE destination, result destination)."""

    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, value: str) -> str:
        return _check_ae_title(value)


class DimseSettings(_Section):
    """The DIMSE service class provider."""

    #: Calling AE titles allowed to associate; empty allows any calling AE title.
    allowed_calling_aets: list[str] = Field(default_factory=list)
    #: When true, only the peers listed below (AE title and address) may associate.
    require_known_peers: bool = False
    peers: list[DimsePeer] = Field(default_factory=list)
    maximum_pdu_size: int = Field(default=0, ge=0)
    network_timeout_seconds: float = Field(default=60.0, gt=0)
    acse_timeout_seconds: float = Field(default=30.0, gt=0)
    dimse_timeout_seconds: float = Field(default=60.0, gt=0)
    maximum_associations: int = Field(default=32, ge=1, le=1024)
    #: Server processes sharing the DICOM port (SO_REUSEPORT, Linux): more than one lets
    #: parallel associations use more than one CPU core. 1 keeps DIMSE in-process.
    processes: int = Field(default=1, ge=1, le=64)

    @field_validator("allowed_calling_aets")
    @classmethod
    def _aets(cls, values: list[str]) -> list[str]:
        return [_check_ae_title(v) for v in values]

    @model_validator(mode="after")
    def _unique_peers(self) -> DimseSettings:
        seen: set[str] = set()
        for peer in self.peers:
            if peer.ae_title in seen:
                raise ValueError(f"peer AE title {peer.ae_title!r} is listed twice")
            seen.add(peer.ae_title)
        return self

    def peer(self, ae_title: str) -> DimsePeer | None:
        """The configured peer with this AE title, if any."""
        for p in self.peers:
            if p.ae_title == ae_title.strip():
                return p
        return None


class ArchiveSettings(_Section):
    """Storage and study stability."""

    #: A study is stable after this many seconds with no new instance.
    stability_seconds: float = Field(default=5.0, gt=0, le=86400)
    #: How often the stability monitor looks for quiet studies.
    stability_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    #: Where instance files live; default ``<data_dir>/instances``.
    storage_dir: Path | None = None
    #: Index writes are grouped into one transaction of at most this many instances.
    index_batch_size: int = Field(default=64, ge=1, le=10000)
    #: Acknowledge an instance only once its file and folder entry are flushed to disk
    #: (fsync), so that it survives a power loss; off, it survives a crash of radai but
    #: not of the machine. As Orthanc's SyncStorageArea (on by default since 1.7.4).
    #: A SQLite index runs in WAL mode with synchronous=NORMAL, as Orthanc's: after a
    #: power loss its last commits may be missing while their files are on disk.
    fsync: bool = True


class Settings(BaseSettings):
    """All of radai's settings."""

    model_config = SettingsConfigDict(
        env_prefix="RADAI_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Path("radai-data")
    database_url: str | None = None
    host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    dicom_port: int = Field(default=11112, ge=0, le=65535)
    ae_title: str = "RADAI"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: Public base URL of the web server (used in RetrieveURL); default from host and port.
    base_url: str | None = None

    dimse: DimseSettings = Field(default_factory=DimseSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    dicomweb: DicomWebSettings = Field(default_factory=DicomWebSettings)
    deid: DeidSettings = Field(default_factory=DeidSettings)
    datasets: DatasetsSettings = Field(default_factory=DatasetsSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    results: ResultsSettings = Field(default_factory=ResultsSettings)
    worklist: WorklistSettings = Field(default_factory=WorklistSettings)
    viewer: ViewerSettings = Field(default_factory=ViewerSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    vendor: VendorSettings = Field(default_factory=VendorSettings)

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, value: str) -> str:
        return _check_ae_title(value)

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL; SQLite in the data directory unless one is set."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            return url
        return f"sqlite:///{(self.data_dir / 'radai.db').resolve()}"

    @property
    def storage_dir(self) -> Path:
        """Folder holding the instance files."""
        return self.archive.storage_dir or self.data_dir / "instances"

    @property
    def public_base_url(self) -> str:
        """Base URL clients use to reach the web server."""
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"http://{self.host}:{self.http_port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments (command-line options) > environment > radai.toml.
        return init_settings, env_settings, _TomlSource(settings_cls)


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by ``RADAI_CONFIG`` (set by :func:`load_settings`)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("RADAI_CONFIG")
        if not path:
            return {}
        return _read_toml(Path(path))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load and validate the settings.

    ``config_file`` (or ``RADAI_CONFIG``, or ``./radai.toml`` if it exists) is read
    first, then ``RADAI_*`` environment variables, then ``overrides`` (command-line
    options; ``None`` values are ignored).
    """
    if config_file is None and "RADAI_CONFIG" not in os.environ and Path("radai.toml").is_file():
        config_file = Path("radai.toml")
    previous = os.environ.get("RADAI_CONFIG")
    if config_file is not None:
        os.environ["RADAI_CONFIG"] = str(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        if config_file is not None:
            if previous is None:
                os.environ.pop("RADAI_CONFIG", None)
            else:
                os.environ["RADAI_CONFIG"] = previous


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        lines.append(f"invalid setting {where}: {err['msg']}")
    return "; ".join(lines)
