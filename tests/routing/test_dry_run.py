"""``radai route --dry-run STUDY_UID``: rule by rule, attribute by attribute, nothing written."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from radai.app import Radai
from radai.cli import main
from radai.config import load_settings
from radai.inference.models import InferenceTask
from radai.routing.models import RoutingDecision
from tests.fixtures.peers import write_config
from tests.inference.packages import store_image


def _archive(data_dir: Path, *images: tuple[str, str]) -> list[str]:
    radai = Radai(load_settings(data_dir=data_dir))
    radai.prepare()
    try:
        return [store_image(radai, name, salt)[0] for name, salt in images]
    finally:
        radai.stop()


def _count(data_dir: Path, table: type) -> int:
    radai = Radai(load_settings(data_dir=data_dir))
    try:
        with radai.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        radai.db.dispose()


def test_dry_run_explains_every_rule_and_attribute(tmp_path: Path) -> None:
    data = tmp_path / "data"
    [chest] = _archive(data, ("RG1_UNCI.dcm", "dry-chest"))
    result = CliRunner().invoke(main, ["route", "--dry-run", chest, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()  # the explanation; log lines go to stderr
    assert "2 rule(s) (embedded defaults)" in lines
    assert "rule chest-radiograph (per study): matches" in lines
    assert "    Modality: CR — one of CR, DX: yes" in lines
    assert "    BodyPartExamined: CHEST — one of CHEST: yes" in lines
    assert "  model pneumonia-peds → pneumonia-peds@0.3.0 (live)" in lines
    assert ("rule brain-mri (per study): does not match — no series has Modality one of MR and "
            "no series has BodyPartExamined one of BRAIN, HEAD") in lines
    assert "    Modality: CR — one of MR: no" in lines
    assert lines[-2:] == ["would go to:", "  pneumonia-peds@0.3.0 for the study (rule chest-radiograph)"]
    assert chest not in result.output  # UIDs appear only as one-way references
    assert _count(data, InferenceTask) == 0 and _count(data, RoutingDecision) == 0


def test_dry_run_of_a_study_no_rule_matches_and_free_text_stays_hidden(tmp_path: Path) -> None:
    data = tmp_path / "data"
    [study] = _archive(data, ("RG3_UNCI.dcm", "dry-knee"))  # CR of the lower leg
    config = write_config(tmp_path / "radai.toml", {"data_dir": str(data), "routing": {"rules": [
        {"name": "chest-by-description", "models": ["pneumonia-peds"],
         "match": {"modality": ["CR"], "study_description": "chest|thorax"}}]}})
    result = CliRunner().invoke(main, ["route", "--dry-run", study, "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "    StudyDescription: (free text, not shown) — matches /chest|thorax/: no" in result.output
    assert "fibroma" not in result.output.lower()  # the study's own description is never printed
    assert result.stdout.splitlines()[-1] == (
        "would not be routed: no rule matched; chest-by-description: "
        "StudyDescription does not match /chest|thorax/")


def test_dry_run_needs_the_flag_and_a_stored_study(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _archive(data)
    missing_flag = CliRunner().invoke(main, ["route", "1.2.3", "--data-dir", str(data)])
    assert missing_flag.exit_code == 2 and "only --dry-run is available" in missing_flag.output
    unknown = CliRunner().invoke(main, ["route", "--dry-run", "1.2.3.4", "--data-dir", str(data)])
    assert unknown.exit_code == 1 and "the study is not in the archive" in unknown.output
