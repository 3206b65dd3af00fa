"""Fixtures of the inference tests: an in-process radai with fast retries, and its executor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from radai.app import Radai
from radai.archive.models import Study
from radai.config import load_settings
from radai.inference.executor import LocalExecutor
from radai.inference.metrics import InferenceMetrics
from radai.inference.models import InferenceTask
from radai.routing.models import RoutingDecision
from radai.routing.service import route_study
from radai.routing.settings import Match, ModelRef, Rule
from tests.fixtures.peers import free_port

FAST_INFERENCE = {"poll_seconds": 0.1, "lease_seconds": 5, "retry_base_seconds": 0.2,
                  "retry_max_seconds": 1, "shutdown_grace_seconds": 1}


def make_radai(tmp_path: Path, db_url: str, **extra: Any) -> Radai:
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=db_url, http_port=free_port(), dicom_port=free_port(),
        archive={"stability_seconds": 0.5, "stability_poll_seconds": 0.1},
        inference={**FAST_INFERENCE, **extra.pop("inference", {})}, **extra)
    radai = Radai(settings)
    radai.prepare()
    return radai


@pytest.fixture
def local_radai(tmp_path: Path, sqlite_url: str) -> Iterator[Radai]:
    """A migrated radai on SQLite, not serving, with fast retries."""
    radai = make_radai(tmp_path, sqlite_url)
    try:
        yield radai
    finally:
        radai.stop()


@pytest.fixture
def start_executor() -> Iterator[Callable[[Radai], LocalExecutor]]:
    """Starts executors on a radai; stops them after the test."""
    started: list[LocalExecutor] = []

    def start(radai: Radai) -> LocalExecutor:
        executor = LocalExecutor(db=radai.db, storage=radai.storage, registry=radai.models,
                                 settings=radai.settings.inference, data_dir=radai.settings.data_dir,
                                 events=radai.task_events,
                                 metrics=InferenceMetrics.on(radai.metrics.registry))
        executor.start()
        started.append(executor)
        return executor

    yield start
    for executor in started:
        executor.stop()


def route(radai: Radai, study_uid: str, model_id: str, *, per: str = "study") -> RoutingDecision:
    """Route a study's current change to one model with a catch-all rule."""
    rule = Rule(name="test-rule", per=per, match=Match(), models=[ModelRef(id=model_id)])  # type: ignore[arg-type]
    with radai.db.transaction() as s:
        study = s.scalar(select(Study).where(Study.study_instance_uid == study_uid))
        assert study is not None
        return route_study(s, study_pk=study.id, change_seq=study.change_seq, rules=[rule],
                           registry=radai.models)



def all_tasks(radai: Radai) -> list[InferenceTask]:
    with radai.db.session() as s:
        return list(s.scalars(select(InferenceTask).order_by(InferenceTask.id)))


def tasks_in(radai: Radai, *states: str) -> Callable[[], bool]:
    """A predicate: every task is in one of ``states``."""
    def check() -> bool:
        tasks = all_tasks(radai)
        return bool(tasks) and all(t.state in states for t in tasks)
    return check
