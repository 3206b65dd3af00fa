"""A model that starts failing, in a serving radai: a defect-rate alert, then automatic
suspension when it is configured (and not when it is not); a suspended model gets no
more clinical studies.

Everything runs as in production: studies are stored, become stable, are routed by a
rule to a real python-runtime test package (tests/inference/python_model.py), run by the
executor with retries, and the monitoring component of ``radai serve`` evaluates every
half second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from radai.app import Radai
from radai.archive.models import Study
from radai.config import load_settings
from radai.inference.models import FINAL, InferenceTask
from radai.models.manifest import LifecycleState
from radai.monitoring.models import Alert
from radai.routing.models import RoutingDecision
from tests.auth.conftest import FAST_ARGON2
from tests.fixtures.peers import free_port
from tests.fixtures.waiting import wait_for
from tests.inference.conftest import FAST_INFERENCE
from tests.inference.packages import set_behaviour, store_image, write_python_package

MODEL = "test-failing"


def serving(tmp_path: Path, sqlite_url: str, *, suspend_on: list[str]) -> tuple[Radai, Path]:
    package = write_python_package(tmp_path / "data" / "models" / MODEL / "1.0", MODEL, max_retries=1)
    manifest = yaml.safe_load((package / "model.yaml").read_text())
    manifest["lifecycle"] = {"state": "live"}  # as if it had gone live through validation
    (package / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=sqlite_url, http_port=free_port(), dicom_port=free_port(),
        archive={"stability_seconds": 0.3, "stability_poll_seconds": 0.1},
        inference={**FAST_INFERENCE, "retry_base_seconds": 0.1, "retry_max_seconds": 0.2},
        results={"enabled": False}, models={"builtin": False}, auth=FAST_ARGON2,
        routing={"rules": [{"name": "everything", "per": "study", "models": [MODEL]}]},
        monitoring={"interval_seconds": 0.5, "windows": [{"name": "last-40", "studies": 40}],
                    "min_studies": 10, "suspend_on": suspend_on})
    radai = Radai(settings)
    radai.start()
    return radai, package



def tasks_ended(radai: Radai, n: int) -> Callable[[], bool]:
    def check() -> bool:
        with radai.db.session() as s:
            states = list(s.scalars(select(InferenceTask.state)))
        return len(states) == n and all(state in FINAL for state in states)
    return check


def decision_of(radai: Radai, study_uid: str) -> RoutingDecision | None:
    with radai.db.session() as s:
        return s.scalar(select(RoutingDecision).join(Study, Study.id == RoutingDecision.study_pk)
                        .where(Study.study_instance_uid == study_uid))


@pytest.mark.slow
@pytest.mark.parametrize("suspend", [True, False], ids=["auto-suspension", "no-suspension"])
def test_a_failing_model_raises_a_defect_alert_and_is_suspended_if_configured(
        tmp_path: Path, sqlite_url: str, suspend: bool) -> None:
    radai, package = serving(tmp_path, sqlite_url, suspend_on=["defect_rate"] if suspend else [])
    try:
        source = Path(radai.models.get(MODEL, "1.0").source)
        assert source == package.resolve()
        for i in range(5):
            store_image(radai, "CT_small.dcm", f"good-{i}")
        wait_for(tasks_ended(radai, 5), "5 good tasks")
        # The runtime starts raising on every forward pass.
        set_behaviour(source, {"fail": "exception"})
        for i in range(10):
            store_image(radai, "CT_small.dcm", f"bad-{i}")
        wait_for(tasks_ended(radai, 15), "15 ended tasks")
        with radai.db.session() as s:
            defects = list(s.scalars(select(InferenceTask.defect_category)
                                     .where(InferenceTask.state == "defect")))
        assert defects == ["model_error"] * 10

        def alert() -> Alert | None:
            with radai.db.session() as s:
                return s.scalar(select(Alert).where(Alert.metric == "defect_rate", Alert.state == "open"))

        # The alert opens as soon as 10 tasks have ended with too many defects, and follows the
        # rate while it stays open.
        wait_for(lambda: (a := alert()) is not None and a.last_value == pytest.approx(10 / 15),
                 "a defect-rate alert at 10/15")
        opened = alert()
        assert opened is not None and opened.value > 0.1 and opened.threshold == 0.1
        if suspend:
            wait_for(lambda: radai.models.get(MODEL, "1.0").state is LifecycleState.SUSPENDED, "suspension")
            last = radai.models.history(MODEL, "1.0")[-1]
            assert (last.from_state, last.to_state, last.actor) == ("live", "suspended", "monitoring")
            assert last.reason.startswith(f"monitoring alert {opened.id}: defect_rate = ")
            assert "crossed the threshold 0.1 over window last-40" in last.reason
            wait_for(lambda: (a := alert()) is not None and a.action == "suspended", "the alert's action")
        else:
            time.sleep(1.5)  # three more evaluation rounds
            assert radai.models.get(MODEL, "1.0").state is LifecycleState.LIVE
            a = alert()
            assert a is not None and a.action == ""
        # A new study: routing sends clinical studies to live versions only.
        set_behaviour(source, {})
        study, _ = store_image(radai, "CT_small.dcm", "after")
        wait_for(lambda: decision_of(radai, study) is not None, "the new study's routing decision")
        decision = decision_of(radai, study)
        assert decision is not None
        if suspend:
            assert (decision.outcome, decision.task_count) == ("not_routed", 0)
            assert "no version of it is live" in decision.reason
        else:
            assert (decision.outcome, decision.task_count) == ("routed", 1)
            wait_for(tasks_ended(radai, 16), "the new study's task")
    finally:
        radai.stop()
