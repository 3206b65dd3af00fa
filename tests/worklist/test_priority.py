"""The worklist's order: AI urgency, clinical emergencies, waiting against the SLA and its cap."""

from __future__ import annotations

from datetime import timedelta

import pytest

from radai.app import Radai
from radai.worklist.priority import priority
from radai.worklist.queue import WorklistFilter, worklist_page
from radai.worklist.schemas import WorklistPage
from radai.worklist.settings import WorklistSettings
from tests.worklist.helpers import NODULE, PNEUMONIA, Scored, add_findings, store_study


def _page(radai: Radai, settings: WorklistSettings | None = None, **filters: object) -> WorklistPage:
    with radai.db.session() as s:
        return worklist_page(s, settings=settings or radai.settings.worklist,
                             filters=WorklistFilter(**filters), limit=100)  # type: ignore[arg-type]


def _order(page: WorklistPage, names: dict[str, str]) -> list[str]:
    by_uid = {uid: name for name, uid in names.items()}
    return [by_uid[i.study_instance_uid] for i in page.items]


def test_critical_before_urgent_before_routine_before_negative(radai: Radai) -> None:
    names = {}
    for key, scored in [("negative", [Scored(PNEUMONIA, 0.1, "critical")]),
                        ("routine", [Scored(NODULE, 0.7, "routine")]),
                        ("critical", [Scored(PNEUMONIA, 0.6, "critical"), Scored(NODULE, 0.9, "routine")]),
                        ("urgent", [Scored(PNEUMONIA, 0.95, "urgent")])]:
        names[key] = store_study(radai, f"order-{key}", patient_id=f"P-{key}")
        add_findings(radai, names[key], scored)
    page = _page(radai)
    assert _order(page, names) == ["critical", "urgent", "routine", "negative"]
    top = page.items[0]
    # The badge shows the most urgent positive finding first, and the explanation says why.
    assert [(f.label, f.positive) for f in top.findings] == [("pneumonia", True), ("nodule", True)]
    assert top.priority_explanation.startswith(
        "400 = 400 for a critical positive AI finding (pneumonia) + 0 for waiting")
    assert page.items[-1].ai_result == "negative" and page.items[-1].priority < 1


def test_an_emergency_outranks_an_urgent_finding_but_not_a_critical_one(radai: Radai) -> None:
    settings = WorklistSettings.model_validate({"emergency_rules": [
        {"name": "ed-modalities", "match": {"calling_ae_title": ["ED_CR1"]}},
        {"name": "stat", "match": {"study_description": r"\bSTAT\b"}}]})
    names = {
        "urgent": store_study(radai, "em-urgent", patient_id="P1"),
        "critical": store_study(radai, "em-critical", patient_id="P2"),
        "from-ed": store_study(radai, "em-ae", patient_id="P3", ae_title="ED_CR1"),
        "stat-order": store_study(radai, "em-desc", patient_id="P4", StudyDescription="CHEST STAT"),
        "plain": store_study(radai, "em-plain", patient_id="P5", ae_title="WARD_CR",
                             StudyDescription="CHEST statistics"),
    }
    add_findings(radai, names["urgent"], [Scored(PNEUMONIA, 0.9, "urgent")])
    add_findings(radai, names["critical"], [Scored(PNEUMONIA, 0.9, "critical")])
    page = _page(radai, settings)
    order = _order(page, names)
    assert order[0] == "critical"
    assert set(order[1:3]) == {"from-ed", "stat-order"}
    assert order[3:] == ["urgent", "plain"]
    ed = next(i for i in page.items if i.study_instance_uid == names["from-ed"])
    assert ed.emergency == "ed-modalities"
    assert "300 for a clinical emergency (rule ed-modalities)" in ed.priority_explanation
    # Without the rules nothing is an emergency.
    assert all(i.emergency is None for i in _page(radai).items)


def test_a_normal_study_waiting_past_its_sla_overtakes_a_fresh_positive_one(radai: Radai) -> None:
    sla = radai.settings.worklist.sla_minutes["CR"]
    names = {
        "fresh-positive": store_study(radai, "sla-fresh", patient_id="P1", received_ago=timedelta(minutes=1)),
        "overdue-normal": store_study(radai, "sla-over", patient_id="P2",
                                      received_ago=timedelta(minutes=sla * 1.1)),
        "waiting-normal": store_study(radai, "sla-half", patient_id="P3",
                                      received_ago=timedelta(minutes=sla * 0.5)),
    }
    add_findings(radai, names["fresh-positive"], [Scored(NODULE, 0.8, "routine")])
    page = _page(radai)
    assert _order(page, names) == ["overdue-normal", "fresh-positive", "waiting-normal"]
    overdue = page.items[0]
    assert overdue.overdue and overdue.sla_minutes == sla
    assert overdue.priority_explanation.startswith("110 = 110 for waiting 4 h 24 min of a 4 h 00 min SLA")


def test_waiting_is_capped_so_urgent_findings_still_come_first(radai: Radai) -> None:
    sla = radai.settings.worklist.sla_minutes["CR"]
    names = {
        "fresh-urgent": store_study(radai, "cap-urgent", patient_id="P1"),
        "very-old-normal": store_study(radai, "cap-old", patient_id="P2",
                                       received_ago=timedelta(minutes=sla * 10)),
        "old-normal": store_study(radai, "cap-15", patient_id="P3",
                                  received_ago=timedelta(minutes=sla * 2)),
    }
    add_findings(radai, names["fresh-urgent"], [Scored(PNEUMONIA, 0.8, "urgent")])
    page = _page(radai)
    # Both normal studies are past the cap: equal points, the one that arrived first leads.
    assert _order(page, names) == ["fresh-urgent", "very-old-normal", "old-normal"]
    assert page.items[1].priority == page.items[2].priority == 150
    assert "(capped at 1.5 SLAs)" in page.items[1].priority_explanation


def test_the_formula_is_monotone_in_each_input() -> None:
    settings = WorklistSettings()
    waits = [timedelta(minutes=m) for m in (0, 10, 120, 240, 300, 360, 5000)]
    for urgency in (None, "routine", "urgent", "critical"):
        for emergency in (None, "ed"):
            scores = [priority(urgency=urgency, finding_label=None, emergency_rule=emergency, waited=w,
                               sla_minutes=240, settings=settings).score for w in waits]
            assert scores == sorted(scores)
    for wait in waits:
        by_urgency = [priority(urgency=u, finding_label=None, emergency_rule=None, waited=wait,
                               sla_minutes=240, settings=settings).score
                      for u in (None, "routine", "urgent", "critical")]
        assert by_urgency == sorted(by_urgency) and len(set(by_urgency)) == 4


@pytest.mark.parametrize("bad", [
    {"urgency_points": {"routine": 300, "urgent": 200, "critical": 400}},
    {"urgency_points": {"routine": 100, "urgent": 200}},
    {"emergency_rules": [{"name": "everything", "match": {}}]},
    {"emergency_rules": [{"name": "bad-regex", "match": {"study_description": "("}}]},
    {"sla_minutes": {"CT": 0}},
])
def test_invalid_worklist_settings_are_refused(bad: dict[str, object]) -> None:
    from radai.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="invalid setting worklist"):
        load_settings(worklist=bad)
