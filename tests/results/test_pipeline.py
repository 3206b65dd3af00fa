"""From a stored study to its result objects: routing, the task, the result worker, the API.

A real radai in-process (SQLite and PostgreSQL) routes a real radiograph to the test model
package (tests/results/mask_model), which runs; the result worker then makes the SR, the
marked-up image and the segmentation and stores them in the archive. Storing them changes
the study, which must not route it again.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from sqlalchemy import select

from radai.app import Radai, build_web_app
from radai.archive.models import Instance
from radai.auth.roles import Role
from radai.config import load_settings
from radai.inference.models import InferenceTask
from radai.results.models import ResultSet
from radai.results.schemas import StudyResultsOut
from radai.results.service import study_results
from radai.routing.models import RoutingDecision
from tests.auth.conftest import FAST_ARGON2, add_user, bearer, token_for
from tests.fixtures.data import pydicom_data, to_bytes, with_new_uids
from tests.fixtures.peers import free_port
from tests.fixtures.waiting import wait_for
from tests.results.conftest import copy_mask_model

FAST = {
    "archive": {"stability_seconds": 0.5, "stability_poll_seconds": 0.1},
    "inference": {"poll_seconds": 0.1, "lease_seconds": 10, "retry_base_seconds": 0.2,
                  "retry_max_seconds": 1, "shutdown_grace_seconds": 1},
    "results": {"poll_seconds": 0.2},
    "models": {"builtin": False},
    "routing": {"rules": [{"name": "everything", "per": "study", "models": ["mask-test"]}]},
    "auth": FAST_ARGON2,
}


def serving_radai(tmp_path: Path, db_url: str, **overrides: Any) -> Radai:
    """A radai that serves (routing, stability, executor, results), with the test model."""
    copy_mask_model(tmp_path / "data")
    settings = load_settings(data_dir=tmp_path / "data", database_url=db_url, http_port=free_port(),
                             dicom_port=free_port(), **{**FAST, **overrides})
    radai = Radai(settings)
    radai.start()
    return radai


@pytest.fixture
def served(tmp_path: Path, db_url: str) -> Iterator[Radai]:
    radai = serving_radai(tmp_path, db_url)
    try:
        yield radai
    finally:
        radai.stop()


def store(radai: Radai, name: str, salt: str) -> str:
    ds = with_new_uids(dcmread(pydicom_data(name)), salt)
    radai.archive.store(to_bytes(ds), source="import")
    return str(ds.StudyInstanceUID)



def results_of(radai: Radai, study_uid: str) -> StudyResultsOut:
    with radai.db.session() as s:
        return study_results(s, study_instance_uid=study_uid)


def ready(radai: Radai, study_uid: str, count: int = 1) -> Callable[[], bool]:
    def check() -> bool:
        results = results_of(radai, study_uid).results
        return len(results) == count and all(r.state == "ready" for r in results)
    return check


def test_a_finished_task_gets_sr_capture_and_segmentation_in_the_archive(served: Radai) -> None:
    study = store(served, "RG1_UNCI.dcm", "pipeline-findings")
    wait_for(ready(served, study), "result objects stored")
    (result,) = results_of(served, study).results
    assert result.status == "findings" and result.model_id == "mask-test"
    assert result.pathology_flag is True and result.confidence_level is not None
    assert {f.label for f in result.findings} == {"bright lesion", "bright area"}
    assert result.timestamps.received is not None and result.timestamps.finished is not None
    assert result.timestamps.received <= result.timestamps.started <= result.timestamps.finished  # type: ignore[operator]
    kinds = sorted(o.kind for o in result.objects)
    assert kinds == ["sc", "seg", "sr"]

    with served.db.session() as s:
        stored = set(s.scalars(select(Instance.sop_instance_uid).where(Instance.source == "result")))
    assert set(stored) == {o.sop_instance_uid for o in result.objects}
    by_kind = {o.kind: o for o in result.objects}

    sr = hd.sr.srread(io.BytesIO(served.archive.read(by_kind["sr"].sop_instance_uid)))
    assert sr.StudyInstanceUID == study
    report = hd.sr.MeasurementReport.from_sequence([_root(sr)])
    groups = {g.finding_type.meaning: g for g in report.get_image_measurement_groups()}
    assert set(groups) == {"Lesion", "Abnormal"}

    sc = dcmread(io.BytesIO(served.archive.read(by_kind["sc"].sop_instance_uid)))
    source = dcmread(pydicom_data("RG1_UNCI.dcm"), stop_before_pixels=True)
    assert (sc.Rows, sc.Columns) == (source.Rows, source.Columns)
    assert sc.BurnedInAnnotation == "YES"

    seg = hd.seg.segread(io.BytesIO(served.archive.read(by_kind["seg"].sop_instance_uid)))
    mask = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
                                  .ReferencedSOPInstanceUID], segment_numbers=[1])[0, ..., 0]
    assert mask.shape == (source.Rows, source.Columns) and 0 < np.asarray(mask, bool).mean() < 1
    assert seg.get_segment_description(1).segmented_property_type.meaning == "Lesion"


def _root(sr: Any) -> Any:
    from pydicom.dataset import Dataset

    root = Dataset()
    for kw in ("ValueType", "ConceptNameCodeSequence", "ContinuityOfContent",
               "ContentTemplateSequence", "ContentSequence"):
        setattr(root, kw, getattr(sr, kw))
    return root


def test_storing_results_does_not_route_the_study_again(served: Radai) -> None:
    study = store(served, "RG1_UNCI.dcm", "pipeline-no-loop")
    wait_for(ready(served, study), "result objects stored")

    def decisions() -> list[RoutingDecision]:
        with served.db.session() as s:
            return list(s.scalars(select(RoutingDecision).order_by(RoutingDecision.change_seq)))

    # The result instances are a change of the study: it becomes stable again and is
    # looked at, but a change made only of results routes nothing.
    wait_for(lambda: len(decisions()) >= 2, "the study's second stability event")
    time.sleep(2.0)  # several more stability polls and executor passes
    first, *later = decisions()
    assert first.outcome == "routed"
    assert [d.outcome for d in later] == ["no_new_input"]
    with served.db.session() as s:
        assert len(list(s.scalars(select(InferenceTask)))) == 1
        assert len(list(s.scalars(select(ResultSet)))) == 1


def test_a_technical_defect_gets_a_defect_report(served: Radai) -> None:
    study = store(served, "US1_UNCR.dcm", "pipeline-defect")  # ultrasound: outside the model's scope
    wait_for(ready(served, study), "defect report stored")
    (result,) = results_of(served, study).results
    assert result.status == "defect" and result.pathology_flag is None
    assert result.defect is not None and result.defect.category.value == "input_not_suited"
    assert [o.kind for o in result.objects] == ["sr"]
    sr = dcmread(io.BytesIO(served.archive.read(result.objects[0].sop_instance_uid)))
    texts = [i.TextValue for i in sr.ContentSequence[-1].ContentSequence if i.ValueType == "TEXT"]
    assert "did not analyse this study" in texts[0]


def test_results_api_serves_the_json_summary(tmp_path: Path, sqlite_url: str) -> None:
    radai = serving_radai(tmp_path, sqlite_url)
    try:
        study = store(radai, "RG1_UNCI.dcm", "pipeline-api")
        wait_for(ready(radai, study), "result objects stored")
        with TestClient(build_web_app(radai)) as client:
            add_user(radai, "reader", Role.RADIOLOGIST)
            headers = bearer(token_for(client, "reader"))
            assert client.get(f"/api/v1/studies/{study}/results").status_code == 401
            r = client.get(f"/api/v1/studies/{study}/results", headers=headers)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["studyInstanceUID"] == study
            (result,) = body["results"]
            assert result["pathologyFlag"] is True
            assert 0 <= result["confidenceLevel"] <= 100
            assert result["modelId"] == "mask-test" and result["modelVersion"] == "1.0"
            assert "NOT FOR DIAGNOSIS" in result["conclusion"]
            assert set(result["timestamps"]) == {"received", "started", "finished"}
            assert {o["kind"] for o in result["objects"]} == {"sr", "sc", "seg"}
            assert all(len(o["sopInstanceUID"]) <= 64 for o in result["objects"])
            missing = client.get("/api/v1/studies/1.2.3.4/results", headers=headers)
            assert missing.status_code == 404
    finally:
        radai.stop()
