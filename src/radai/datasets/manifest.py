"""The manifest of a frozen dataset version, and the facts it is built from.

The manifest is a JSON document (format ``radai.dataset-manifest/1``) naming every
study of the version under its key and Study Instance UID, with its subgroup values,
its labels and every instance (SOP Instance UID, SOP Class UID, Series Instance UID,
size and the SHA-256 of the stored file, as the archive index holds it). Instances
radai made itself (AI results, source ``result``) are not part of a study's content.
The manifest is stored as canonical JSON (sorted keys, no insignificant whitespace,
UTF-8), so its SHA-256 identifies the version: validation reports cite it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Patient, Series, Study
from radai.datasets.card import age_band, age_in_years, build_card, sex_value
from radai.datasets.models import DatasetStudy, DatasetVersion
from radai.quality.inputs import AGE_BAND, INSTITUTION, MANUFACTURER, SEX, UNKNOWN

FORMAT = "radai.dataset-manifest/1"
#: Archive source of instances radai made (radai.results); never part of a dataset study.
RESULT_SOURCE = "result"


def canonical_json(document: Mapping[str, Any]) -> str:
    """The one text form of a JSON document whose hash is taken (RFC 8785 in spirit)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    """SHA-256 (hex) of UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class InstanceFacts:
    """One stored instance of a dataset study."""

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    sha256: str
    size: int
    #: Path below the archive's storage folder.
    path: str


@dataclass
class StudyFacts:
    """What the archive index says about a study: identity, subgroup values, instances."""

    study_pk: int
    study_instance_uid: str
    subgroups: dict[str, str]
    modalities: list[str]
    instances: list[InstanceFacts] = field(default_factory=list)


def study_facts(session: Session, study_pks: Iterable[int]) -> dict[int, StudyFacts]:
    """Facts of each study, from the index; instances made by radai are left out."""
    pks = sorted(set(study_pks))
    facts: dict[int, StudyFacts] = {}
    if not pks:
        return facts
    rows = session.execute(
        select(Study, Patient).join(Patient, Study.patient_pk == Patient.id).where(Study.id.in_(pks)))
    for study, patient in rows:
        years = age_in_years(study.patient_age, patient.patient_birth_date, study.study_date)
        facts[study.id] = StudyFacts(study.id, study.study_instance_uid,
                                     {SEX: sex_value(patient.patient_sex), AGE_BAND: age_band(years)}, [])
    series_seen: set[int] = set()
    rows2 = session.execute(
        select(Instance, Series).join(Series, Instance.series_pk == Series.id)
        .where(Series.study_pk.in_(pks), Instance.source != RESULT_SOURCE)
        .order_by(Series.study_pk, Series.series_number, Series.id, Instance.instance_number, Instance.id))
    for instance, series in rows2:
        f = facts[series.study_pk]
        f.instances.append(InstanceFacts(instance.sop_instance_uid, instance.sop_class_uid,
                                         series.series_instance_uid, instance.sha256, instance.size_bytes,
                                         instance.path))
        if series.id in series_seen:
            continue
        series_seen.add(series.id)
        if series.modality and series.modality not in f.modalities:
            f.modalities.append(series.modality)
        # The first series that names them gives the study's equipment and site.
        for attr, value in ((MANUFACTURER, series.manufacturer), (INSTITUTION, series.institution_name)):
            if value.strip() and attr not in f.subgroups:
                f.subgroups[attr] = value.strip()
    for f in facts.values():
        f.subgroups.setdefault(MANUFACTURER, UNKNOWN)
        f.subgroups.setdefault(INSTITUTION, UNKNOWN)
        f.modalities.sort()
    return facts


def label_entries(entry: DatasetStudy) -> list[dict[str, str]]:
    """A study's labels as manifest entries, ordered by code."""
    return sorted(({"scheme": lab.code_scheme, "value": lab.code_value, "meaning": lab.code_meaning,
                    "label": lab.value, "method": lab.method, "established_by": lab.established_by}
                   for lab in entry.labels), key=lambda e: (e["scheme"], e["value"]))


def findings_of(studies: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Every coded finding labelled in the studies, ordered by code (first meaning wins)."""
    found: dict[tuple[str, str], str] = {}
    for study in studies:
        for lab in study["labels"]:
            found.setdefault((lab["scheme"], lab["value"]), lab["meaning"])
    return [{"scheme": s, "value": v, "meaning": m} for (s, v), m in sorted(found.items())]


def build_manifest(*, version: DatasetVersion, entries: Sequence[DatasetStudy],
                   facts: Mapping[int, StudyFacts], frozen_at: datetime, frozen_by: str) -> dict[str, Any]:
    """The manifest document of ``version`` (its card included)."""
    studies = []
    for entry in sorted(entries, key=lambda e: e.key):
        f = facts[entry.study_pk]
        studies.append({
            "key": entry.key,
            "study_instance_uid": f.study_instance_uid,
            "modalities": f.modalities,
            "subgroups": dict(sorted(f.subgroups.items())),
            "labels": label_entries(entry),
            "instances": [{"sop_instance_uid": i.sop_instance_uid, "sop_class_uid": i.sop_class_uid,
                           "series_instance_uid": i.series_instance_uid, "sha256": i.sha256,
                           "size": i.size} for i in f.instances],
        })
    findings = findings_of(studies)
    text = {"purpose": version.purpose, "source": version.source,
            "inclusion_criteria": version.inclusion_criteria, "label_method": version.label_method,
            "label_verification": version.label_verification}
    dataset = version.dataset
    return {
        "format": FORMAT,
        "dataset": dataset.name,
        "version": version.number,
        "description": dataset.description,
        "frozen_at": frozen_at.isoformat().replace("+00:00", "Z"),
        "frozen_by": frozen_by,
        "card": build_card(name=dataset.name, version=version.number, description=dataset.description,
                           text=text, studies=studies, findings=findings),
        "findings": findings,
        "studies": studies,
    }


def load_manifest(version: DatasetVersion) -> dict[str, Any]:
    """The stored manifest of a frozen version (ValueError for a draft)."""
    if version.manifest is None:
        raise ValueError(f"{version.dataset.name}@{version.number} is a draft and has no manifest yet")
    document: dict[str, Any] = json.loads(version.manifest)
    return document
