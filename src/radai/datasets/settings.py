"""Settings of the ``[datasets]`` section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

#: PS3.15 E.3 options applied to de-identified exports unless others are given. A
#: reference dataset is used for subgroup analysis and follow-up: patients' sex and age
#: are kept (Retain Patient Characteristics, E.3.8) and dates move by a per-patient
#: offset, so intervals stay true (Retain Longitudinal Temporal Information with
#: Modified Dates, E.3.6).
DEFAULT_EXPORT_OPTIONS = ["retain-patient-characteristics", "retain-longitudinal-modified-dates"]


class DatasetsSettings(BaseModel):
    """Dataset exports."""

    model_config = ConfigDict(extra="forbid")

    #: De-identification options of ``radai datasets export`` (names as in ``radai deid --option``).
    export_options: list[str] = list(DEFAULT_EXPORT_OPTIONS)

    @field_validator("export_options")
    @classmethod
    def _known(cls, values: list[str]) -> list[str]:
        for value in values:
            from radai.deid.options import Option  # only when options are set: it loads pydicom's codes

            Option.from_name(value)
        return values
