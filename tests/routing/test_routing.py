"""Routing on the stability event: tasks and decisions, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from radai.app import Radai
from radai.archive.models import Instance, Series, Study
from radai.archive.stability import StabilityMonitor, StableStudy
from radai.inference.models import InferenceTask
from radai.routing.listener import Router
from radai.routing.models import RoutingDecision
from radai.routing.service import route_study
from radai.routing.settings import RoutingSettings
from radai.uids import derived_uid
from tests.inference.packages import install_live, store_image, write_python_package


def _monitor(radai: Radai, settings: RoutingSettings | None = None) -> StabilityMonitor:
    monitor = StabilityMonitor(radai.db, quiet_seconds=0.2, poll_seconds=0.1)
    Router(settings=settings or radai.settings.routing, registry=radai.models, stability=monitor).start()
    return monitor


def _settle(monitor: StabilityMonitor) -> list[StableStudy]:
    time.sleep(0.3)
    return monitor.check()


def _decisions(radai: Radai) -> list[RoutingDecision]:
    with radai.db.session() as s:
        return list(s.scalars(select(RoutingDecision).order_by(RoutingDecision.id)))


def _tasks(radai: Radai) -> list[InferenceTask]:
    with radai.db.session() as s:
        return list(s.scalars(select(InferenceTask).order_by(InferenceTask.id)))


def _rules(*rules: dict[str, object]) -> RoutingSettings:
    return RoutingSettings.model_validate({"rules": list(rules)})


def test_a_stable_chest_radiograph_goes_to_the_pneumonia_model(radai: Radai) -> None:
    monitor = _monitor(radai)  # the embedded default rules
    study_uid, _ = store_image(radai, "RG1_UNCI.dcm", "chest")  # real CR chest PA
    [event] = _settle(monitor)
    assert event.study_instance_uid == study_uid
    [decision] = _decisions(radai)
    assert (decision.outcome, decision.task_count, decision.change_seq) == ("routed", 1, 1)
    assert decision.rules == "chest-radiograph" and decision.models == "pneumonia-peds@0.3.0"
    assert decision.reason.startswith("chest-radiograph: matched → pneumonia-peds@0.3.0 (per study); "
                                      "brain-mri: no series has Modality one of MR")
    [task] = _tasks(radai)
    assert (task.model_id, task.model_version, task.scope, task.series_pk) == (
        "pneumonia-peds", "0.3.0", "study", None)
    assert (task.state, task.rule, task.change_seq) == ("pending", "chest-radiograph", 1)
    assert task.max_attempts == 3  # the manifest's max_retries (2) + 1


def test_a_study_no_rule_matches_is_recorded_as_not_routed(radai: Radai) -> None:
    monitor = _monitor(radai)
    store_image(radai, "MR2_UNCI.dcm", "shoulder")  # MR without Body Part Examined
    assert len(_settle(monitor)) == 1
    [decision] = _decisions(radai)
    assert (decision.outcome, decision.task_count, decision.models) == ("not_routed", 0, "")
    assert decision.reason == ("no rule matched; chest-radiograph: no series has Modality one of CR, DX "
                               "and no series has BodyPartExamined one of CHEST; "
                               "brain-mri: no series has BodyPartExamined one of BRAIN, HEAD")
    assert _tasks(radai) == []


def _two_models(radai: Radai, tmp_path: Path) -> None:
    for name in ("model-a", "model-b", "model-c"):
        install_live(radai.models, write_python_package(tmp_path / name, name))


def _mixed_study(radai: Radai) -> str:
    """One study: two MR series and one CT series."""
    for i, name in enumerate(("MR_small.dcm", "MR_small.dcm", "CT_small.dcm")):
        study_uid, _ = store_image(radai, name, f"mixed-{i}", study_salt="mixed")
    return study_uid


def test_per_series_rules_make_a_task_per_matching_series(radai: Radai, tmp_path: Path) -> None:
    _two_models(radai, tmp_path)
    monitor = _monitor(radai, _rules(
        {"name": "mr-series", "per": "series", "models": ["model-a"], "match": {"modality": ["MR"]}},
        {"name": "mr-study", "per": "study", "models": ["model-b"], "match": {"modality": ["MR"]}}))
    _mixed_study(radai)
    _settle(monitor)
    tasks = _tasks(radai)
    with radai.db.session() as s:
        mr_series = set(s.scalars(select(Series.id).where(Series.modality == "MR")))
    per_series = [t for t in tasks if t.model_id == "model-a"]
    assert {t.series_pk for t in per_series} == mr_series and len(per_series) == 2
    assert all(t.scope == "series" for t in per_series)
    [per_study] = [t for t in tasks if t.model_id == "model-b"]
    assert (per_study.scope, per_study.series_pk) == ("study", None)
    [decision] = _decisions(radai)
    assert decision.task_count == 3 and "(per 2 series)" in decision.reason


def test_one_study_can_go_to_several_models(radai: Radai, tmp_path: Path) -> None:
    _two_models(radai, tmp_path)
    monitor = _monitor(radai, _rules(
        {"name": "both", "models": ["model-a", "model-b@1.0"], "match": {"modality": ["CT"]}},
        {"name": "also", "models": ["model-c", "model-a"], "match": {"calling_ae_title": [""]}},
        {"name": "never", "models": ["model-c"], "match": {"modality": ["US"]}}))
    _mixed_study(radai)
    _settle(monitor)
    assert sorted(t.model_id for t in _tasks(radai)) == ["model-a", "model-b", "model-c"]
    [decision] = _decisions(radai)
    assert decision.rules == "both, also"
    assert decision.models == "model-a@1.0, model-b@1.0, model-c@1.0"
    assert "never: no series has Modality one of US" in decision.reason


def test_only_live_models_receive_studies(radai: Radai, tmp_path: Path) -> None:
    radai.models.import_package(write_python_package(tmp_path / "draft", "draft-model"))
    monitor = _monitor(radai, _rules({"name": "any", "models": ["draft-model@1.0"]}))
    store_image(radai, "MR_small.dcm", "live-check", study_salt="live")
    _settle(monitor)
    [decision] = _decisions(radai)
    assert decision.outcome == "not_routed"
    assert decision.reason == "any: matched, but model draft-model@1.0 is draft, not live"
    assert _tasks(radai) == []


def test_results_radai_stores_do_not_route_a_study_again(radai: Radai, tmp_path: Path) -> None:
    install_live(radai.models, write_python_package(tmp_path / "m", "model-a"))
    monitor = _monitor(radai, _rules({"name": "any", "models": ["model-a"]}))
    study_uid, _ = store_image(radai, "MR_small.dcm", "first", study_salt="again")
    _settle(monitor)
    # A result object of that study (as radai.results stores it) is a change, not an input.
    store_image(radai, "CT_small.dcm", "result", study_salt="again",
                changes={"SeriesInstanceUID": derived_uid("t", "result-series")})
    with radai.db.transaction() as s:
        last = s.scalar(select(Instance).order_by(Instance.id.desc()).limit(1))
        assert last is not None
        last.source = "result"
    _settle(monitor)
    store_image(radai, "MR_small.dcm", "second", study_salt="again")
    _settle(monitor)
    decisions = _decisions(radai)
    assert [(d.change_seq, d.outcome, d.input_instances) for d in decisions] == [
        (1, "routed", 1), (2, "no_new_input", 1), (3, "routed", 2)]
    assert decisions[1].reason == "no new input image since change 1"
    assert [t.change_seq for t in _tasks(radai)] == [1, 3]
    with radai.db.session() as s:
        study = s.scalar(select(Study).where(Study.study_instance_uid == study_uid))
        assert study is not None and study.stable_seq == 3


def test_routing_the_same_change_again_changes_nothing(radai: Radai, tmp_path: Path) -> None:
    install_live(radai.models, write_python_package(tmp_path / "m", "model-a"))
    settings = _rules({"name": "any", "models": ["model-a"]})
    monitor = _monitor(radai, settings)
    store_image(radai, "MR_small.dcm", "once")
    _settle(monitor)
    with radai.db.transaction() as s:
        study = s.scalar(select(Study))
        assert study is not None
        again = route_study(s, study_pk=study.id, change_seq=study.change_seq,
                            rules=settings.rules, registry=radai.models)
    assert again.outcome == "routed"
    assert len(_decisions(radai)) == 1 and len(_tasks(radai)) == 1


def test_the_router_wakes_the_executor_after_commit_when_it_made_tasks(radai: Radai) -> None:
    woken: list[int] = []

    def wake() -> None:
        # Called after the commit: the tasks are visible to any other connection.
        woken.append(len(_tasks(radai)))

    monitor = StabilityMonitor(radai.db, quiet_seconds=0.2, poll_seconds=0.1)
    Router(settings=radai.settings.routing, registry=radai.models, stability=monitor,
           on_routed=wake).start()
    store_image(radai, "MR2_UNCI.dcm", "not-routed")  # no rule matches: no wake-up
    _settle(monitor)
    assert woken == []
    store_image(radai, "RG1_UNCI.dcm", "routed")
    _settle(monitor)
    assert woken == [1]
