"""Settings: radai.toml plus RADAI_* variables, validated at start-up."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from radai.config import ConfigError, load_settings
from tests.fixtures.peers import radai_command


def test_defaults() -> None:
    s = load_settings()
    assert (s.host, s.http_port, s.dicom_port, s.ae_title) == ("127.0.0.1", 8000, 11112, "RADAI")
    assert s.data_dir == Path("radai-data")
    assert s.archive.stability_seconds == 5.0
    assert s.resolved_database_url.startswith("sqlite:///")


def test_file_then_environment_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "radai.toml"
    cfg.write_text('http_port = 9000\nae_title = "FROMFILE"\n[archive]\nstability_seconds = 2.5\n'
                   '[[dimse.peers]]\nae_title = "PACS"\nhost = "127.0.0.1"\nport = 104\n')
    s = load_settings(cfg)
    assert (s.http_port, s.ae_title, s.archive.stability_seconds) == (9000, "FROMFILE", 2.5)
    assert s.dimse.peer("PACS") is not None and s.dimse.peer("PACS").port == 104  # type: ignore[union-attr]
    monkeypatch.setenv("RADAI_HTTP_PORT", "9100")
    monkeypatch.setenv("RADAI_ARCHIVE__STABILITY_SECONDS", "7")
    s = load_settings(cfg)
    assert s.http_port == 9100 and s.archive.stability_seconds == 7
    assert load_settings(cfg, http_port=9200).http_port == 9200


def test_postgresql_url_uses_psycopg() -> None:
    s = load_settings(database_url="postgresql://u@localhost/radai")
    assert s.resolved_database_url == "postgresql+psycopg://u@localhost/radai"


@pytest.mark.parametrize(("text", "named"), [
    ("http_port = 70000", "http_port"),
    ('ae_title = "THIS-TITLE-IS-TOO-LONG"', "ae_title"),
    ("[archive]\nstability_seconds = -1", "archive.stability_seconds"),
    ('database_url = "mysql://x"', "database_url"),
    ("[dimse]\n[[dimse.peers]]\nae_title = \"P\"\nhost = \"h\"\nport = 0", "dimse.peers.0.port"),
    ("unknown_setting = 1", "unknown_setting"),
])
def test_invalid_values_are_named(tmp_path: Path, text: str, named: str) -> None:
    cfg = tmp_path / "radai.toml"
    cfg.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert named in str(info.value)


def test_invalid_environment_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADAI_DICOM_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="dicom_port"):
        load_settings()


def test_broken_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "radai.toml"
    cfg.write_text("http_port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg)


def test_serve_stops_at_start_up_naming_the_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "radai.toml"
    cfg.write_text("[archive]\nstability_seconds = 0\n")
    result = subprocess.run([*radai_command(), "serve", "--config", str(cfg)], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode != 0
    assert "archive.stability_seconds" in result.stderr
