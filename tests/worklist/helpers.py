"""Study and finding set-up for the worklist tests, through radai's own services.

Studies are real images (pydicom's MR_small.dcm) stored in the archive under new UIDs
with the patient, modality and sender attributes a test needs. Findings are written
the way the executor writes them: a task is created, claimed and completed (or made a
defect) through radai.inference.service, so the rows are exactly those inference makes.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydicom import dcmread
from sqlalchemy import select, update

from radai.app import Radai
from radai.archive.models import Series, Study
from radai.inference.service import (
    FindingRecord,
    TaskResult,
    claim_tasks,
    complete_task,
    create_task,
    fail_task,
)
from radai.models.api import Code, DefectCategory, FindingScore
from radai.routing.service import route_study
from radai.routing.settings import Match, ModelRef, Rule
from radai.uids import derived_uid
from tests.fixtures.data import pydicom_test_file, to_bytes
from tests.fixtures.peers import require_program

PNEUMONIA = Code("233604007", "SCT", "Pneumonia")
NODULE = Code("27925004", "SCT", "Nodule")


@dataclass(frozen=True)
class Scored:
    """One finding a test model reports."""

    code: Code
    probability: float
    urgency: str = "routine"
    threshold: float = 0.5

    @property
    def positive(self) -> bool:
        return self.probability >= self.threshold


def store_study(radai: Radai, key: str, *, modality: str = "CR", patient_id: str = "PAT-1",
                issuer: str = "", name: str = "Doe^Jane", study_date: str = "20240105",
                ae_title: str = "", received_ago: timedelta | None = None,
                **attributes: Any) -> str:
    """Store one real image as a new study; returns its Study Instance UID.

    ``received_ago`` moves the study's arrival into the past (waiting time).
    """
    ds = dcmread(pydicom_test_file("MR_small.dcm"))
    ds.StudyInstanceUID = derived_uid("worklist-test", key, "study")
    ds.SeriesInstanceUID = derived_uid("worklist-test", key, "series")
    ds.SOPInstanceUID = derived_uid("worklist-test", key, "instance")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = name
    ds.StudyDate = study_date
    if issuer:
        ds.IssuerOfPatientID = issuer
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    out = radai.archive.store(to_bytes(ds), source="dimse" if ae_title else "import",
                              source_ae_title=ae_title)
    if received_ago is not None:
        when = datetime.now().astimezone() - received_ago
        with radai.db.transaction() as s:
            s.execute(update(Study).where(Study.study_instance_uid == out.study_instance_uid)
                      .values(first_received_at=when, last_received_at=when))
    return out.study_instance_uid


def _study(radai: Radai, study_uid: str) -> tuple[int, int, int, str]:
    with radai.db.session() as s:
        study = s.scalar(select(Study).where(Study.study_instance_uid == study_uid))
        assert study is not None
        series = s.scalar(select(Series).where(Series.study_pk == study.id))
        assert series is not None
        from radai.archive.models import Instance

        sop = s.scalar(select(Instance.sop_instance_uid).where(Instance.series_pk == series.id))
        return study.id, study.change_seq, series.id, str(sop)


def _task(radai: Radai, study_uid: str, model_id: str, version: str) -> Any:
    study_pk, change_seq, _series_pk, _sop = _study(radai, study_uid)
    with radai.db.transaction() as s:
        task_id = create_task(s, study_pk=study_pk, study_instance_uid=study_uid, series_pk=None,
                              series_instance_uid=None, model_id=model_id, model_version=version,
                              rule="test", change_seq=change_seq, max_attempts=1)
        assert task_id is not None
    claims = claim_tasks(radai.db, worker_id="tests", model_id=model_id, model_version=version,
                         limit=100, lease_seconds=60)
    return next(c for c in claims if c.study_instance_uid == study_uid)


def add_findings(radai: Radai, study_uid: str, scored: list[Scored], *,
                 model_id: str = "test-model", version: str = "1.0") -> list[int]:
    """A done task of ``model_id`` with these findings; returns the finding ids."""
    claim = _task(radai, study_uid, model_id, version)
    _pk, _seq, series_pk, sop = _study(radai, study_uid)
    records = [FindingRecord(score=FindingScore(code=f.code, label=f.code.meaning.lower(),
                                                probability=f.probability, threshold=f.threshold,
                                                positive=f.positive, urgency=f.urgency),
                             sop_instance_uid=sop, series_pk=series_pk) for f in scored]
    with radai.db.transaction() as s:
        ids = complete_task(s, claim=claim, result=TaskResult(
            findings=records, input_count=1, batch_size=1, batch_tasks=1, preprocess_ms=1.0,
            inference_ms=1.0))
    assert ids is not None
    return ids


def add_pending(radai: Radai, study_uid: str, *, model_id: str = "test-model") -> None:
    """A task that has not run yet."""
    study_pk, change_seq, _series_pk, _sop = _study(radai, study_uid)
    with radai.db.transaction() as s:
        create_task(s, study_pk=study_pk, study_instance_uid=study_uid, series_pk=None,
                    series_instance_uid=None, model_id=model_id, model_version="1.0", rule="test",
                    change_seq=change_seq, max_attempts=1)


def add_defect(radai: Radai, study_uid: str, reason: str, *, model_id: str = "test-model") -> None:
    """A task that ended as an ``input_not_suited`` technical defect."""
    claim = _task(radai, study_uid, model_id, "1.0")
    with radai.db.transaction() as s:
        fail_task(s, claim=claim, category=DefectCategory.INPUT_NOT_SUITED, reason=reason,
                  retry_base_seconds=1, retry_max_seconds=1)


def route_nowhere(radai: Radai, study_uid: str) -> None:
    """Record a routing decision in which no rule matched (the study is not routed)."""
    study_pk, change_seq, _series_pk, _sop = _study(radai, study_uid)
    rule = Rule(name="us-only", match=Match(modality=["US"]), models=[ModelRef(id="none")])
    with radai.db.transaction() as s:
        route_study(s, study_pk=study_pk, change_seq=change_seq, rules=[rule], registry=radai.models)


def study_pk(radai: Radai, study_uid: str) -> int:
    return _study(radai, study_uid)[0]


def dciodvfy_errors(data: bytes, folder: Path) -> list[str]:
    """The error lines dicom3tools' dciodvfy prints for a PS3.10 file."""
    program = require_program("dciodvfy")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "object.dcm"
    path.write_bytes(data)
    proc = subprocess.run([program, str(path)], capture_output=True, text=True, timeout=120, check=False)
    return [line.strip() for line in (proc.stdout + proc.stderr).splitlines()
            if line.strip().startswith("Error")]
