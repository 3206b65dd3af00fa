"""``radai models`` end to end through the command line (click's runner, a fresh data folder)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from radai.cli import main
from tests.models.helpers import write_package


def _run(data: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["models", *args, "--data-dir", str(data)])


def test_list_show_enable_disable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    listed = _run(data, "list")
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.strip()}
    assert lines.pop("ID").split() == ["ID", "VERSION", "VENDOR", "STATE", "ORIGIN", "LICENCE"]
    assert set(lines) == {"brain-tumor-mri", "pneumonia-peds"}
    assert "live" in lines["pneumonia-peds"]
    assert "licence unknown — research use only" in lines["pneumonia-peds"]
    assert "MIT" in lines["brain-tumor-mri"] and "builtin" in lines["brain-tumor-mri"]
    shown = _run(data, "show", "pneumonia-peds@0.3.0")
    assert shown.exit_code == 0, shown.output
    assert "licence: licence unknown — research use only" in shown.output
    assert '(233604007, SCT, "Pneumonia") column 1, threshold 0.5, urgency urgent' in shown.output
    disabled = _run(data, "disable", "pneumonia-peds", "--reason", "drift alert")
    assert disabled.exit_code == 0 and "pneumonia-peds@0.3.0 is suspended" in disabled.output
    assert "suspended" in _run(data, "list").output
    assert "live -> suspended by cli:" in _run(data, "show", "pneumonia-peds").output
    enabled = _run(data, "enable", "pneumonia-peds")
    assert enabled.exit_code == 0 and "is live" in enabled.output
    missing = _run(data, "show", "no-such-model")
    assert missing.exit_code == 1 and "no model no-such-model" in missing.output


def test_import_and_lifecycle_errors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bad = write_package(tmp_path / "bad", {"id": "acme", "outputs.findings.0.threshold": 2,
                                           "lifecycle.state": "draft"})
    result = _run(data, "import", str(bad))
    assert result.exit_code == 1
    assert "model.yaml: outputs.findings.0.threshold: must be between 0 and 1" in result.output
    good = write_package(tmp_path / "good", {"id": "acme", "version": "2.0", "lifecycle.state": "draft"})
    result = _run(data, "import", str(good))
    assert result.exit_code == 0, result.output
    assert "imported acme@2.0 (draft)" in result.output
    assert (data / "models" / "acme" / "2.0" / "model.yaml").is_file()
    refused = _run(data, "enable", "acme")
    assert refused.exit_code == 1
    assert "cannot go from draft to live (allowed from draft: retired, validated)" in refused.output
    for state in ("validated", "approved"):
        moved = _run(data, "set-state", "acme@2.0", state, "--reason", "validation run 7 passed")
        assert moved.exit_code == 0, moved.output
    assert _run(data, "enable", "acme@2.0").exit_code == 0
    assert "acme" in _run(data, "list").output
