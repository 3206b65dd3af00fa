"""Routing settings: TOML and YAML rules, defaults, and start-up validation naming the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from radai.app import Radai
from radai.config import ConfigError, load_settings
from radai.routing.listener import Router, checked_rules
from radai.routing.settings import DEFAULT_RULES, ModelRef
from tests.fixtures.peers import write_config


def test_rules_from_radai_toml(tmp_path: Path) -> None:
    config = write_config(tmp_path / "radai.toml", {"routing": {"rules": [
        {"name": "chest", "per": "series", "models": ["pneumonia-peds", "brain-tumor-mri@0.1.1"],
         "match": {"modality": ["cr", "DX"], "series_description": "(?i)pa|ap"}},
    ]}})
    settings = load_settings(config)
    [rule] = settings.routing.effective_rules()
    assert rule.name == "chest" and rule.per == "series"
    assert rule.match.modality == ["CR", "DX"]
    assert rule.models == [ModelRef(id="pneumonia-peds"), ModelRef(id="brain-tumor-mri", version="0.1.1")]
    assert not settings.routing.using_defaults


def test_rules_from_a_yaml_file_follow_the_inline_ones(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        "rules:\n"
        "  - name: brain\n"
        "    models: [{id: brain-tumor-mri}]\n"
        "    match: {modality: [MR], body_part_examined: [BRAIN, HEAD, '']}\n"
        "  - name: unused\n"
        "    enabled: false\n"
        "    models: [pneumonia-peds]\n")
    settings = load_settings(routing={"rules": [{"name": "inline", "models": ["pneumonia-peds"]}],
                                      "rules_file": str(rules_file)})
    assert [r.name for r in settings.routing.rules] == ["inline", "brain", "unused"]
    assert [r.name for r in settings.routing.effective_rules()] == ["inline", "brain"]


def test_an_invalid_regex_fails_naming_the_rule() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(routing={"rules": [{"name": "knees", "models": ["m"],
                                          "match": {"series_description": "knee("}}]})
    assert "rule 'knees': match.series_description is not a valid regular expression" in str(err.value)


def test_a_bad_rule_in_the_yaml_file_names_the_file_and_the_rule(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("rules:\n  - name: typo\n    models: [m]\n    match: {modallity: [CT]}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(routing={"rules_file": str(rules_file)})
    assert f"rules file {rules_file}: rule 'typo': match.modallity" in str(err.value)
    missing = tmp_path / "none.yaml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(routing={"rules_file": str(missing)})


def test_rule_names_are_unique_and_rules_name_a_model() -> None:
    with pytest.raises(ConfigError, match="rule 'a' is defined twice"):
        load_settings(routing={"rules": [{"name": "a", "models": ["m"]}, {"name": "a", "models": ["n"]}]})
    with pytest.raises(ConfigError, match=r"routing\.rules\.0\.models"):
        load_settings(routing={"rules": [{"name": "a", "models": []}]})


def test_defaults_apply_only_when_no_rule_is_configured() -> None:
    assert load_settings().routing.effective_rules() == list(DEFAULT_RULES)
    assert load_settings().routing.using_defaults
    assert load_settings(routing={"default_rules": False}).routing.effective_rules() == []
    own = load_settings(routing={"rules": [{"name": "x", "models": ["m"]}]})
    assert [r.name for r in own.routing.effective_rules()] == ["x"]


def test_a_rule_naming_an_unknown_model_stops_radai_at_start_up(tmp_path: Path, sqlite_url: str) -> None:
    settings = load_settings(data_dir=tmp_path / "data", database_url=sqlite_url, routing={"rules": [
        {"name": "good", "models": ["pneumonia-peds"]},
        {"name": "chest-typo", "models": ["pneumonia-pedz"]},
    ]})
    radai = Radai(settings)
    radai.prepare()
    try:
        with pytest.raises(ConfigError) as err:
            Router(settings=settings.routing, registry=radai.models, stability=radai.stability).start()
        assert "rule 'chest-typo' names model 'pneumonia-pedz', which is not registered" in str(err.value)
        unknown_version = settings.routing.model_copy(update={"rules": [
            settings.routing.rules[0].model_copy(update={"models": [ModelRef(id="pneumonia-peds",
                                                                             version="9.9")]})]})
        with pytest.raises(ConfigError, match=r"'pneumonia-peds@9\.9'"):
            checked_rules(unknown_version, radai.models)
    finally:
        radai.stop()


def test_default_rules_without_their_model_are_dropped_not_fatal(tmp_path: Path, sqlite_url: str) -> None:
    settings = load_settings(data_dir=tmp_path / "data", database_url=sqlite_url, models={"builtin": False})
    radai = Radai(settings)
    radai.prepare()
    try:
        assert checked_rules(settings.routing, radai.models) == []
    finally:
        radai.stop()
