"""What every result object shares: the algorithm's identity, UIDs, and study context.

IHE AI Results (AIR, Rev. 1.1, §6.5.3 "Evidence Creator" content requirements) asks
that every result object names the algorithm that made it in the Contributing
Equipment Sequence (0018,A001) with Purpose of Reference (Newcode1, 99IHE,
"Processing Algorithm"), Manufacturer, Manufacturer's Model Name and Software
Versions; radai also records itself as the object's Manufacturer (General Equipment
Module, PS3.3 §C.7.5.1).

UIDs of result objects are derived (PS3.5 B.2, :func:`radai.uids.derived_uid`) from the
source UIDs and the model's id and version, so that producing the same result again
gives the same UIDs and the archive and every PACS keep one copy.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from radai.logs import thread_warnings
from radai.uids import derived_uid

if TYPE_CHECKING:
    from radai.models.manifest import Manifest

#: IHE AIR's Purpose of Reference for the algorithm in Contributing Equipment.
PROCESSING_ALGORITHM = Code("Newcode1", "99IHE", "Processing Algorithm")
#: radai's own coding scheme (PS3.16 §8.2: private designators start with "99").
RADAI_SCHEME = "99RADAI"
#: Manufacturer (0008,0070) of every object radai creates.
MANUFACTURER = "radai"
#: Words every marked-up image and SR carries, for people reading them in a PACS.
NOT_FOR_DIAGNOSIS = "AI RESULT — NOT FOR DIAGNOSIS"
#: Result objects hold text beyond Latin-1 (the caption's dash, model names): UTF-8
#: (PS3.3 §C.12.1.1.2, ISO_IR 192); values copied from the source are re-encoded.
CHARACTER_SET = "ISO_IR 192"

#: LO values are at most 64 characters (PS3.5 Table 6.2-1).
_LO = 64


def _lo(value: str) -> str:
    # Names in manifests may be longer than LO allows; the full name stays in SR text.
    return value.strip()[:_LO]


@dataclass(frozen=True)
class Algorithm:
    """The model version that produced a result (IHE AIR's Processing Algorithm)."""

    model_id: str
    version: str
    #: Human-readable name (manifest ``name``).
    name: str
    #: Maker of the model (manifest ``vendor``).
    vendor: str

    def __post_init__(self) -> None:
        for attr in ("model_id", "version", "name", "vendor"):
            if not str(getattr(self, attr)).strip():
                raise ValueError(f"algorithm {attr} must not be empty")

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> Algorithm:
        """The algorithm a model package's manifest describes."""
        return cls(model_id=manifest.id, version=manifest.version, name=manifest.name,
                   vendor=manifest.vendor)

    @property
    def device_uid(self) -> str:
        """Device UID of this model version as an SR observer (TID 1004)."""
        return derived_uid("radai-algorithm", self.model_id, self.version)

    @property
    def label(self) -> str:
        """``name version``, as shown in captions."""
        return f"{self.name} {self.version}"


def contributing_equipment(algorithm: Algorithm) -> Dataset:
    """One Contributing Equipment Sequence item naming the algorithm (IHE AIR).

    PS3.3 §C.12.1 (SOP Common Module) with IHE AIR's Purpose of Reference code;
    highdicom's ``ContributingEquipment`` only takes DCM purposes, hence a plain item.
    """
    purpose = Dataset()
    purpose.CodeValue = PROCESSING_ALGORITHM.value
    purpose.CodingSchemeDesignator = PROCESSING_ALGORITHM.scheme_designator
    purpose.CodeMeaning = PROCESSING_ALGORITHM.meaning
    item = Dataset()
    item.Manufacturer = _lo(algorithm.vendor)
    item.ManufacturerModelName = _lo(algorithm.name)
    item.SoftwareVersions = _lo(algorithm.version)
    item.PurposeOfReferenceCodeSequence = [purpose]
    return item


def add_algorithm(ds: Dataset, algorithm: Algorithm) -> None:
    """Name ``algorithm`` in ``ds``'s Contributing Equipment (IHE AIR) and declare 99IHE."""
    existing = list(ds.get("ContributingEquipmentSequence", []))
    ds.ContributingEquipmentSequence = [*existing, contributing_equipment(algorithm)]
    declare_scheme(ds, "99IHE", "IHE trial implementation codes", "IHE")


def declare_scheme(ds: Dataset, designator: str, name: str, organization: str) -> None:
    """Declare a private coding scheme used in ``ds`` (PS3.3 §C.12.1.1.4).

    Private designators ("99…") are listed in the Coding Scheme Identification
    Sequence (0008,0110) so that readers know who defines them.
    """
    declared = list(ds.get("CodingSchemeIdentificationSequence", []))
    if any(str(item.get("CodingSchemeDesignator", "")) == designator for item in declared):
        return
    item = Dataset()
    item.CodingSchemeDesignator = designator
    item.CodingSchemeName = name
    item.CodingSchemeResponsibleOrganization = organization
    ds.CodingSchemeIdentificationSequence = [*declared, item]


def result_uid(kind: str, algorithm: Algorithm, *parts: str) -> str:
    """The UID of a result object (or series) of ``kind`` made by ``algorithm`` from ``parts``."""
    return derived_uid("radai-result", kind, algorithm.model_id, algorithm.version, *parts)


def sources_key(sop_instance_uids: Iterable[str]) -> str:
    """One string naming a set of source instances, whatever their order."""
    return "\\".join(sorted(set(sop_instance_uids)))


def require_same_study(datasets: Sequence[Dataset]) -> str:
    """The Study Instance UID all ``datasets`` share; ValueError names the attribute."""
    if not datasets:
        raise ValueError("at least one source instance is needed")
    studies = {str(ds.get("StudyInstanceUID", "")) for ds in datasets}
    if len(studies) != 1 or "" in studies:
        raise ValueError("source instances must share one Study Instance UID (0020,000D)")
    return studies.pop()


@contextmanager
def quiet_library_output() -> Iterator[None]:
    """Keep values out of logs while a library builds a result object.

    highdicom warns with offending values (e.g. a referring physician's name copied from
    the source) and logs at INFO which dataset it copies from (a SOP Instance UID); both
    would put patient data in logs. Its logger is held at ERROR and its warnings are
    dropped; the objects are checked by their own tests and dciodvfy instead.
    """
    logging.getLogger("highdicom").setLevel(logging.ERROR)
    with thread_warnings():  # this thread's only: other threads' warnings stay as they are
        yield


def to_part10(ds: Dataset) -> bytes:
    """``ds`` as a PS3.10 file in its own transfer syntax."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
