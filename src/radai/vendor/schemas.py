"""API types of the vendor grants (``/api/v1/vendor/grants``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator


class GrantIn(BaseModel):
    """Studies to let one vendor account see, de-identified: listed by Study Instance UID,
    or every study of a dataset version (``NAME@VERSION``; ``NAME`` alone is its newest
    frozen version). A dataset grant covers the studies the version holds when granted."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    study_instance_uids: list[str] = Field(default_factory=list, max_length=1000)
    dataset: str | None = Field(default=None, min_length=1, max_length=80)

    @model_validator(mode="after")
    def _one_source(self) -> GrantIn:
        if bool(self.study_instance_uids) == (self.dataset is not None):
            raise ValueError("give either study_instance_uids or dataset")
        return self


class GrantOut(BaseModel):
    """A study a vendor account may see (the original UID: this API is for administrators)."""

    username: str
    study_instance_uid: str
    granted_by: str
    granted_at: datetime
