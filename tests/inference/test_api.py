"""``/api/v1`` findings, tasks, heatmaps and routing decisions, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from radai.app import Radai, build_web_app
from radai.auth.passwords import Passwords
from radai.auth.roles import Role
from radai.auth.service import create_user, issue_token
from radai.config import Settings
from radai.inference.executor import LocalExecutor
from tests.fixtures.waiting import wait_for
from tests.inference.conftest import FAST_INFERENCE, route, tasks_in
from tests.inference.packages import live_package, store_image, write_python_package

FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}


@dataclass
class Api:
    radai: Radai
    client: TestClient
    tokens: dict[str, str]

    def get(self, url: str, *, as_user: str = "reader", params: dict[str, object] | None = None
            ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[as_user]}"} if as_user else {}
        return self.client.get(url, headers=headers, params=params)  # type: ignore[arg-type]


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    fast = settings.model_copy(update={
        "auth": settings.auth.model_copy(update=FAST_ARGON2),
        "inference": settings.inference.model_copy(update=FAST_INFERENCE)})
    radai = Radai(fast)
    radai.prepare()
    tokens = {}
    try:
        with radai.db.transaction() as s:
            for name, role in (("reader", Role.RADIOLOGIST), ("auditor", Role.AUDITOR)):
                user = create_user(s, username=name, password="correct horse battery", roles=[role],
                                   passwords=Passwords(fast.auth))
                tokens[name] = issue_token(s, user=user, kind="bearer", lifetime=timedelta(hours=1)).token
        with TestClient(build_web_app(radai)) as client:
            yield Api(radai, client, tokens)
    finally:
        radai.stop()


@pytest.fixture
def processed(api: Api, tmp_path: Path, start_executor: Callable[[Radai], LocalExecutor]) -> dict[str, str]:
    """Three studies: two done by the bright model (one positive), one refused (a defect)."""
    radai = api.radai
    live_package(radai.models, write_python_package(tmp_path / "a", "bright", threshold=0.05,
                                                    batch_timeout_ms=0))
    live_package(radai.models, write_python_package(tmp_path / "b", "picky", behaviour={"unsuited": True}))
    studies = {}
    for key, name in (("ct", "CT_small.dcm"), ("mr", "MR_small.dcm")):
        studies[key], _ = store_image(radai, name, f"api-{key}")
        route(radai, studies[key], "bright")
    studies["refused"], _ = store_image(radai, "MR_small.dcm", "api-refused")
    route(radai, studies["refused"], "picky")
    start_executor(radai)
    wait_for(tasks_in(radai, "done", "defect"), what="tasks ended")
    return studies


def test_findings_of_a_study(api: Api, processed: dict[str, str]) -> None:
    r = api.get(f"/api/v1/studies/{processed['ct']}/findings")
    assert r.status_code == 200
    body = r.json()
    assert body["study_instance_uid"] == processed["ct"]
    [f] = body["findings"]
    assert f["code"] == {"value": "BRIGHT", "scheme": "99RADAITEST", "meaning": "Bright image"}
    assert f["model_id"] == "bright" and f["model_version"] == "1.0" and f["label"] == "bright"
    assert 0.05 <= f["probability"] <= 1 and f["threshold"] == 0.05 and f["positive"] is True
    assert f["urgency"] == "urgent" and f["series_instance_uid"] and f["sop_instance_uid"]
    assert f["timings"]["inference_ms"] is not None and f["timings"]["queue_wait_ms"] is not None
    png = api.get(f["heatmap_url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (32, 32)
    # Over its source image (CT_small, 128×128), as the findings panel shows it: the image's
    # size and grey levels, with the map's colours where it is hot.
    over = api.get(f["heatmap_url"], params={"view": "overlay", "size": 64})
    assert over.status_code == 200 and over.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(over.content))
    assert picture.mode == "RGB" and picture.size == (64, 64)
    rgb = np.asarray(picture, dtype=np.int16)
    coloured = (np.abs(rgb[..., 0] - rgb[..., 2]) > 30).mean()
    assert 0.0 < coloured < 1.0
    assert api.get(f["heatmap_url"], params={"view": "overlay"}).content != png.content
    assert api.get(f["heatmap_url"], params={"view": "3d"}).status_code == 422
    refused = api.get(f"/api/v1/studies/{processed['refused']}/findings").json()
    assert refused["findings"] == []
    assert api.get("/api/v1/studies/1.2.3.4/findings").status_code == 404


def test_tasks_are_filtered_and_paged(api: Api, processed: dict[str, str]) -> None:
    page = api.get("/api/v1/tasks").json()
    assert page["total"] == 3 and [t["id"] for t in page["items"]] == [3, 2, 1]  # newest first
    done = api.get("/api/v1/tasks", params={"state": "done"}).json()
    assert done["total"] == 2 and {t["model_id"] for t in done["items"]} == {"bright"}
    assert all(t["finding_count"] == 1 and t["defect"] is None for t in done["items"])
    [defect] = api.get("/api/v1/tasks", params={"state": "defect"}).json()["items"]
    assert defect["defect"] == {"category": "input_not_suited",
                                "reason": "the test model refuses every study"}
    assert defect["study_instance_uid"] == processed["refused"] and defect["finding_count"] == 0
    by_model = api.get("/api/v1/tasks", params={"model": "bright@1.0", "limit": 1, "offset": 1}).json()
    assert (by_model["total"], by_model["limit"], by_model["offset"], len(by_model["items"])) == (2, 1, 1, 1)
    assert api.get("/api/v1/tasks", params={"model": "bright@2.0"}).json()["total"] == 0
    by_study = api.get("/api/v1/tasks", params={"study": processed["mr"]}).json()
    assert [t["study_instance_uid"] for t in by_study["items"]] == [processed["mr"]]
    assert api.get("/api/v1/tasks", params={"state": "exploded"}).status_code == 422
    assert api.get("/api/v1/tasks", params={"limit": 0}).status_code == 422


def test_one_task(api: Api, processed: dict[str, str]) -> None:
    task = api.get("/api/v1/tasks/1").json()
    assert task["state"] == "done" and task["study_instance_uid"] == processed["ct"]
    assert (task["scope"], task["rule"]) == ("study", "test-rule")
    assert (task["attempts"], task["max_attempts"]) == (1, 3)
    assert task["input_count"] == 1 and task["batch_size"] >= 1 and task["finished_at"]
    assert task["lease_owner"] is None and task["next_attempt_at"] is None
    assert set(task["timings"]) == {"queue_wait_ms", "preprocess_ms", "inference_ms"}
    assert api.get("/api/v1/tasks/999").status_code == 404


def test_routing_decisions_of_a_study(api: Api, processed: dict[str, str]) -> None:
    body = api.get(f"/api/v1/studies/{processed['mr']}/routing").json()
    [decision] = body["decisions"]
    assert decision["outcome"] == "routed" and decision["rules"] == ["test-rule"]
    assert decision["models"] == ["bright@1.0"] and decision["task_count"] == 1
    assert decision["reason"] == "test-rule: matched → bright@1.0 (per study)"
    assert [t["model_id"] for t in body["tasks"]] == ["bright"]
    assert api.get("/api/v1/studies/1.2.3.4/routing").status_code == 404


def test_the_api_needs_a_user_who_may_read_studies(api: Api, processed: dict[str, str]) -> None:
    url = f"/api/v1/studies/{processed['ct']}/findings"
    assert api.get(url, as_user="").status_code == 401
    assert api.get(url, as_user="auditor").status_code == 403
    assert api.get("/api/v1/tasks", as_user="auditor").status_code == 403
