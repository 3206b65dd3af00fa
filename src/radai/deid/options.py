"""The Basic Application Level Confidentiality Profile's options (PS3.15 E.3) and their CID 7050 codes."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code


@dataclass(frozen=True)
class _OptionInfo:
    cli_name: str
    #: The option's column heading in PS3.15 Table E.1-1; None for options that have no column.
    column: str | None
    code: Code


class Option(enum.Enum):
    """An option of the Basic Profile (PS3.15 E.3.1-E.3.10), named as in CID 7050 (PS3.16)."""

    RETAIN_SAFE_PRIVATE = _OptionInfo(
        "retain-safe-private", "Rtn. Safe Priv. Opt.", codes.DCM.RetainSafePrivateOption
    )
    RETAIN_UIDS = _OptionInfo("retain-uids", "Rtn. UIDs Opt.", codes.DCM.RetainUidsOption)
    RETAIN_DEVICE_IDENTITY = _OptionInfo(
        "retain-device-identity", "Rtn. Dev. Id. Opt.", codes.DCM.RetainDeviceIdentityOption
    )
    RETAIN_INSTITUTION_IDENTITY = _OptionInfo(
        "retain-institution-identity", "Rtn. Inst. Id. Opt.", codes.DCM.RetainInstitutionIdentityOption
    )
    RETAIN_PATIENT_CHARACTERISTICS = _OptionInfo(
        "retain-patient-characteristics",
        "Rtn. Pat. Chars. Opt.",
        codes.DCM.RetainPatientCharacteristicsOption,
    )
    RETAIN_LONGITUDINAL_FULL_DATES = _OptionInfo(
        "retain-longitudinal-full-dates",
        "Rtn. Long. Full Dates Opt.",
        codes.DCM.RetainLongitudinalTemporalInformationFullDatesOption,
    )
    RETAIN_LONGITUDINAL_MODIFIED_DATES = _OptionInfo(
        "retain-longitudinal-modified-dates",
        "Rtn. Long. Modif. Dates Opt.",
        codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption,
    )
    CLEAN_DESCRIPTORS = _OptionInfo("clean-descriptors", "Clean Desc. Opt.", codes.DCM.CleanDescriptorsOption)
    CLEAN_STRUCTURED_CONTENT = _OptionInfo(
        "clean-structured-content", "Clean Struct. Cont. Opt.", codes.DCM.CleanStructuredContentOption
    )
    CLEAN_GRAPHICS = _OptionInfo("clean-graphics", "Clean Graph. Opt.", codes.DCM.CleanGraphicsOption)
    #: PS3.15 E.3.1; chosen by giving the regions to blank, not by name.
    CLEAN_PIXEL_DATA = _OptionInfo("clean-pixel-data", None, codes.DCM.CleanPixelDataOption)

    @property
    def cli_name(self) -> str:
        """The option's name on the command line and in settings."""
        return self.value.cli_name

    @property
    def column(self) -> str | None:
        """Its column in Table E.1-1."""
        return self.value.column

    @property
    def code(self) -> Code:
        """Its code in CID 7050 "De-identification Method" (PS3.16)."""
        return self.value.code

    @classmethod
    def from_name(cls, name: str) -> Option:
        """The option with this command-line name; ValueError naming the known ones otherwise."""
        for option in cls:
            if option.cli_name == name and option is not cls.CLEAN_PIXEL_DATA:
                return option
        known = ", ".join(o.cli_name for o in cls if o is not cls.CLEAN_PIXEL_DATA)
        raise ValueError(f"unknown de-identification option {name!r}; known options: {known}")


#: The code of the profile itself (CID 7050).
BASIC_PROFILE_CODE: Code = codes.DCM.BasicApplicationConfidentialityProfile
