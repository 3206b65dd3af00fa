"""Fixtures of the monitoring tests: a radai with small windows, real studies and tasks.

Tasks are made through radai.inference.service (create, claim, complete or fail), the
same functions the executor calls, on real images stored in the archive; only their end
times are set afterwards where a test needs tasks spread over days.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from radai.app import Radai
from radai.archive.models import Instance, Series, Study
from radai.config import load_settings
from radai.inference.models import InferenceTask
from radai.inference.service import (
    FindingRecord,
    TaskResult,
    claim_tasks,
    complete_task,
    create_task,
    fail_task,
)
from radai.models.api import Code, DefectCategory, FindingScore
from radai.models.registry import ModelRecord
from tests.auth.conftest import FAST_ARGON2, add_user, bearer, token_for
from tests.fixtures.peers import free_port
from tests.inference.conftest import FAST_INFERENCE
from tests.inference.packages import FINDING, install_live, store_image, write_onnx_package

__all__ = ["add_user", "bearer", "token_for"]

CODE = Code(FINDING["value"], FINDING["scheme"], FINDING["meaning"])
CODE_KEY = f"{FINDING['scheme']}:{FINDING['value']}"
#: Small windows so that tests need few studies.
SMALL = {"windows": [{"name": "last-40", "studies": 40}], "min_studies": 20, "min_reference_studies": 10,
         "min_psi_studies": 20, "min_verdicts": 10, "reference": {"kind": "first", "studies": 40}}


def make_radai(tmp_path: Path, db_url: str, *, monitoring: dict[str, Any] | None = None,
               **extra: Any) -> Radai:
    """A migrated radai (not serving) with fast retries and the given monitoring settings."""
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=db_url, http_port=free_port(), dicom_port=free_port(),
        archive={"stability_seconds": 0.5, "stability_poll_seconds": 0.1},
        inference={**FAST_INFERENCE, **extra.pop("inference", {})},
        auth={**FAST_ARGON2, **extra.pop("auth", {})},
        monitoring={**SMALL, **(monitoring or {})}, **extra)
    radai = Radai(settings)
    radai.prepare()
    return radai


@pytest.fixture
def mon_radai(tmp_path: Path, db_url: str) -> Iterator[Radai]:
    """A radai with small monitoring windows, SQLite and PostgreSQL."""
    radai = make_radai(tmp_path, db_url)
    try:
        yield radai
    finally:
        radai.stop()


@pytest.fixture
def live_model(mon_radai: Radai, tmp_path: Path) -> ModelRecord:
    """A small real ONNX test package (mean brightness), live."""
    return install_live(mon_radai.models, write_onnx_package(tmp_path / "pkg", "test-onnx", threshold=0.5))


def store(radai: Radai, name: str, salt: str, **changes: Any) -> str:
    """A real image stored under new UIDs (one study each); returns the Study Instance UID."""
    study, _ = store_image(radai, name, salt, changes=changes or None)
    return study


def run_task(radai: Radai, study_uid: str, model: ModelRecord, *, probability: float | None = None,
             defect: DefectCategory | None = None, preprocess_ms: float = 10.0, inference_ms: float = 20.0,
             finished_at: datetime | None = None, change: int = 0) -> int:
    """One clinical task of ``model`` on the study, claimed and ended through the task service:
    done with one finding of ``probability``, or a defect of ``defect``."""
    with radai.db.transaction() as s:
        study = s.scalar(select(Study).where(Study.study_instance_uid == study_uid))
        assert study is not None
        task_id = create_task(s, study_pk=study.id, study_instance_uid=study_uid, series_pk=None,
                              series_instance_uid=None, model_id=model.model_id,
                              model_version=model.version, rule="test", change_seq=study.change_seq + change,
                              max_attempts=1)
        assert task_id is not None
        sop_uid, series_pk = s.execute(
            select(Instance.sop_instance_uid, Series.id).join(Series, Series.id == Instance.series_pk)
            .where(Series.study_pk == study.id).limit(1)).one()
    (claim,) = claim_tasks(radai.db, worker_id="tests", model_id=model.model_id, model_version=model.version,
                           limit=1, lease_seconds=60)
    assert claim.task_id == task_id
    with radai.db.transaction() as s:
        if defect is not None:
            fail_task(s, claim=claim, category=defect, reason="test defect", retry_base_seconds=0,
                      retry_max_seconds=0)
        else:
            assert probability is not None
            threshold = model.manifest.outputs.findings[0].threshold
            score = FindingScore(code=CODE, label="bright", probability=probability, threshold=threshold,
                                 positive=probability >= threshold)
            complete_task(s, claim=claim, result=TaskResult(
                findings=[FindingRecord(score=score, sop_instance_uid=sop_uid, series_pk=series_pk)],
                input_count=1, batch_size=1, batch_tasks=1, preprocess_ms=preprocess_ms,
                inference_ms=inference_ms))
        if finished_at is not None:
            s.execute(update(InferenceTask).where(InferenceTask.id == task_id)
                      .values(finished_at=finished_at))
    return task_id
