"""Settings of the ``[vendor]`` section: what the de-identified vendor view applies.

The key itself is the de-identification key of the ``[deid]`` section (``deid.key_file``
or ``deid.key``): pseudonyms seen by vendors are the ones ``radai deid`` and dataset
exports give for the same key.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Options of the Basic Profile that the view cannot work with.
_REFUSED = {
    # The view addresses studies, series and instances by their pseudonymous UIDs and keeps
    # the original UIDs (which identify the patient's records) away from vendors.
    "retain-uids": "the vendor view always pseudonymises UIDs",
}


class VendorSettings(BaseModel):
    """The de-identified DICOMweb view offered to outside model vendors (``/vendor/dicom-web``)."""

    model_config = ConfigDict(extra="forbid")

    #: Options of the PS3.15 Basic Profile applied to everything vendors see (names as in
    #: ``radai deid --option``). By default dates are shifted per patient (intervals kept)
    #: and descriptions are kept once cleaned of identifying values.
    options: list[str] = Field(
        default_factory=lambda: ["retain-longitudinal-modified-dates", "clean-descriptors"])

    @field_validator("options")
    @classmethod
    def _known(cls, values: list[str]) -> list[str]:
        from radai.deid.options import Option  # only when validating: it loads pydicom's codes

        for value in values:
            if value in _REFUSED:
                raise ValueError(f"option {value!r} cannot be used: {_REFUSED[value]}")
            Option.from_name(value)
        return values
