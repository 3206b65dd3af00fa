"""Rule matching on the facts of a study, attribute by attribute (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from radai.routing.rules import SeriesFacts, StudyFacts, evaluate
from radai.routing.settings import Match, ModelRef, Rule


def _series(pk: int = 1, **kw: Any) -> SeriesFacts:
    values = {"series_pk": pk, "series_instance_uid": f"1.2.3.{pk}", "modality": "CR",
              "body_part_examined": "CHEST", "view_position": "PA", "series_description": "",
              "source_ae_title": "MODALITY1", "institution_name": "", "input_instances": 1}
    values.update(kw)
    return SeriesFacts(**values)


def _study(*series: SeriesFacts, description: str = "") -> StudyFacts:
    return StudyFacts(1, "1.2.3", description, series or (_series(),))


def _rule(per: str = "study", **match: Any) -> Rule:
    return Rule(name="r", per=per, match=Match(**match), models=[ModelRef(id="m")])  # type: ignore[arg-type]


@pytest.mark.parametrize(("match", "series", "expected"), [
    ({"modality": ["CR", "DX"]}, {"modality": "DX"}, True),
    ({"modality": ["cr"]}, {"modality": "CR"}, True),  # code strings compare upper case
    ({"modality": ["CR"]}, {"modality": "MR"}, False),
    ({"body_part_examined": ["CHEST"]}, {"body_part_examined": "chest "}, True),
    ({"body_part_examined": ["CHEST"]}, {"body_part_examined": ""}, False),
    ({"body_part_examined": ["CHEST", ""]}, {"body_part_examined": ""}, True),  # "" accepts empty
    ({"view_position": ["PA", "AP"]}, {"view_position": "AP"}, True),
    ({"view_position": ["PA"]}, {"view_position": "LL"}, False),
    ({"calling_ae_title": ["CT_ROOM_2"]}, {"source_ae_title": "CT_ROOM_2"}, True),
    ({"calling_ae_title": ["CT_ROOM_2"]}, {"source_ae_title": "ct_room_2"}, False),  # AE titles are exact
    ({"series_description": r"^t2\b"}, {"series_description": "T2 FLAIR axial"}, True),
    ({"series_description": "flair"}, {"series_description": "T1 post contrast"}, False),
    ({"institution_name": "children"}, {"institution_name": "City Children's Hospital"}, True),
    ({"institution_name": "children"}, {"institution_name": ""}, False),
])
def test_each_series_attribute(match: dict[str, Any], series: dict[str, Any], expected: bool) -> None:
    ev = evaluate(_rule(**match), _study(_series(**series)))
    assert ev.matched is expected
    assert len(ev.series[0].checks) == 1


def test_study_description_is_a_case_insensitive_search() -> None:
    rule = _rule(study_description="thorax|chest")
    assert evaluate(rule, _study(description="XR THORAX 2 views")).matched
    miss = evaluate(rule, _study(description="Knee"))
    assert not miss.matched
    assert miss.why_not() == "StudyDescription does not match /thorax|chest/"


def test_series_conditions_must_hold_in_one_and_the_same_series() -> None:
    rule = _rule(modality=["CR"], body_part_examined=["CHEST"])
    study = _study(_series(1, modality="CR", body_part_examined="KNEE"),
                   _series(2, modality="MR", body_part_examined="CHEST"))
    ev = evaluate(rule, study)
    assert not ev.matched
    assert ev.why_not() == "no single series meets every condition"
    ok = evaluate(rule, _study(*study.series, _series(3, modality="CR", body_part_examined="CHEST")))
    assert ok.matched and [s.series_pk for s in ok.matching_series] == [3]


def test_why_not_names_attributes_and_the_rules_values_never_the_studys_text() -> None:
    rule = _rule(modality=["CR", "DX"], series_description="chest")
    ev = evaluate(rule, _study(_series(modality="MR", series_description="Smith John knee")))
    reason = ev.why_not()
    assert reason == ("no series has Modality one of CR, DX and "
                      "no series has SeriesDescription matching /chest/")
    assert "Smith" not in reason and "MR" not in reason
    free_text = [c for c in ev.series[0].checks if c.attribute == "SeriesDescription"]
    assert free_text[0].shown_value is None  # free text is compared, never shown
    coded = [c for c in ev.series[0].checks if c.attribute == "Modality"]
    assert coded[0].shown_value == "MR"


def test_series_without_input_images_are_not_considered() -> None:
    rule = _rule(modality=["SR"])
    ev = evaluate(rule, _study(_series(1, modality="CR"), _series(2, modality="SR", input_instances=0)))
    assert not ev.matched
    assert [s.series.series_pk for s in ev.series] == [1]


def test_a_rule_without_conditions_matches_any_study_with_images() -> None:
    assert evaluate(_rule(), _study()).matched
    assert not evaluate(_rule(), _study(_series(input_instances=0))).matched
