"""Settings of the ``[deid]`` section."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator


class DeidSettings(BaseModel):
    """De-identification: where the pseudonymisation key comes from, and the default options."""

    model_config = ConfigDict(extra="forbid")

    #: File holding the HMAC key (at least 16 bytes); kept apart from any output.
    key_file: Path | None = None
    #: The key itself, for deployments that hand secrets in through the environment
    #: (``RADAI_DEID__KEY``); ``key_file`` wins when both are set.
    key: SecretStr | None = None
    #: Options applied when none are given on the command line (names as in ``radai deid --option``).
    options: list[str] = []

    @field_validator("options")
    @classmethod
    def _known(cls, values: list[str]) -> list[str]:
        for value in values:
            from radai.deid.options import Option  # only when options are set: it loads pydicom's codes

            Option.from_name(value)
        return values
