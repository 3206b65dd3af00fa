"""API types of the vendor grants (``/api/v1/vendor/grants``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class GrantIn(BaseModel):
    """Studies to let one vendor account see, de-identified."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    study_instance_uids: list[str] = Field(min_length=1, max_length=1000)


class GrantOut(BaseModel):
    """A study a vendor account may see (the original UID: this API is for administrators)."""

    username: str
    study_instance_uid: str
    granted_by: str
    granted_at: datetime
