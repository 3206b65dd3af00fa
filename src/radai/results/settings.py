"""Settings of result objects and their delivery (``[results]`` in radai.toml).

Destinations are listed as ``[[results.destinations]]`` tables::

    [[results.destinations]]
    name = "pacs"
    kind = "dimse"            # C-STORE SCU (PS3.4 Annex B)
    ae_title = "PACS"
    host = "10.0.0.5"
    port = 104
    types = ["sr", "sc"]      # which result objects go there (default: all)

    [[results.destinations]]
    name = "pacs-web"
    kind = "dicomweb"         # STOW-RS (PS3.18 §10.5)
    url = "https://pacs.example/dicom-web"
    authorization = "Bearer …"   # optional: the HTTP Authorization header's value
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

#: Result object types: TID 1500 SR (also defect reports), Secondary Capture, Segmentation.
ResultType = Literal["sr", "sc", "seg"]
ALL_TYPES: tuple[ResultType, ...] = ("sr", "sc", "seg")

#: AE titles (PS3.5 Table 6.2-1, AE): 1-16 characters, no backslash or control characters.
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
#: Destination names appear in logs, metrics and table rows: short and plain.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class _Destination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    types: list[ResultType] = Field(default_factory=lambda: list(ALL_TYPES), min_length=1)
    #: Send nothing to this destination while false (rows still queue for it).
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-'")
        return value

    def accepts(self, kind: str) -> bool:
        """Whether result objects of ``kind`` go to this destination."""
        return kind in self.types


class DimseDestination(_Destination):
    """A DICOM peer that receives results by C-STORE."""

    kind: Literal["dimse"]
    ae_title: str
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    #: Calling AE title; radai's own (``ae_title`` setting) when unset.
    calling_ae_title: str | None = None

    @field_validator("ae_title", "calling_ae_title")
    @classmethod
    def _ae(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _AE_TITLE.match(value) or not value.strip():
            raise ValueError("must be 1-16 printable ASCII characters without backslash")
        return value.strip()


class DicomWebDestination(_Destination):
    """A DICOMweb origin server that receives results by STOW-RS."""

    kind: Literal["dicomweb"]
    #: Base URL of the DICOMweb service; results are POSTed to ``{url}/studies``.
    url: str
    #: Value of the Authorization header (e.g. ``Bearer …`` or ``Basic …``), if needed.
    authorization: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


Destination = Annotated[DimseDestination | DicomWebDestination, Field(discriminator="kind")]


class ResultsSettings(BaseModel):
    """``[results]``."""

    model_config = ConfigDict(extra="forbid")

    #: Make result objects for finished tasks in this process.
    enabled: bool = True
    #: Which objects to make: SR (always needed for a defect), SC, SEG.
    make: list[ResultType] = Field(default_factory=lambda: list(ALL_TYPES), min_length=1)
    #: How strongly the heatmap colours the marked-up image (0..1).
    heatmap_opacity: float = Field(default=0.45, ge=0.0, le=1.0)
    destinations: list[Destination] = Field(default_factory=list)
    #: How often the result worker and the outbox look for due work.
    poll_seconds: float = Field(default=2.0, gt=0, le=300)
    #: Wait before delivery retry n is ``retry_base_seconds * 2**(n-1)``, at most ``retry_max_seconds``.
    retry_base_seconds: float = Field(default=5.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=900.0, gt=0, le=86400)
    #: Give up on one object and destination after this many attempts (0: never).
    max_attempts: int = Field(default=0, ge=0, le=100000)
    #: Network timeout of one delivery (association or HTTP request).
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    #: Objects per association / STOW-RS request.
    batch_size: int = Field(default=32, ge=1, le=1000)
    #: A claimed delivery or production job is taken over by another process after this.
    lease_seconds: float = Field(default=300.0, ge=5, le=86400)

    @model_validator(mode="after")
    def _check(self) -> ResultsSettings:
        names = [d.name for d in self.destinations]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"destination name {name!r} is listed twice")
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("retry_max_seconds is smaller than retry_base_seconds")
        return self

    def destination(self, name: str) -> DimseDestination | DicomWebDestination | None:
        """The destination called ``name``, if configured."""
        return next((d for d in self.destinations if d.name == name), None)
