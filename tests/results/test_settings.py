"""``[results]`` settings: destinations and their checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from radai.config import ConfigError, load_settings
from radai.results.settings import DicomWebDestination, DimseDestination
from tests.fixtures.peers import write_config


def _load(tmp_path: Path, results: dict[str, object]) -> object:
    config = write_config(tmp_path / "radai.toml", {"data_dir": str(tmp_path / "d"), "results": results})
    return load_settings(config)


def test_destinations_from_the_configuration_file(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path / "radai.toml", {
        "data_dir": str(tmp_path / "d"),
        "results": {"destinations": [
            {"name": "pacs", "kind": "dimse", "ae_title": "PACS", "host": "10.0.0.5", "port": 104,
             "types": ["sr", "sc"]},
            {"name": "web", "kind": "dicomweb", "url": "https://pacs.example/dicom-web/",
             "authorization": "Bearer s3cret"},
        ]}}))
    pacs, web = settings.results.destinations
    assert isinstance(pacs, DimseDestination) and pacs.accepts("sc") and not pacs.accepts("seg")
    assert isinstance(web, DicomWebDestination) and web.accepts("seg")
    assert web.url == "https://pacs.example/dicom-web"
    assert web.authorization is not None and web.authorization.get_secret_value() == "Bearer s3cret"
    assert "s3cret" not in repr(settings.results)


@pytest.mark.parametrize(("destination", "message"), [
    ({"name": "a", "kind": "dimse", "ae_title": "TOO_LONG_AE_TITLE_X", "host": "h", "port": 104},
     "results.destinations.0.dimse.ae_title"),
    ({"name": "a", "kind": "dimse", "ae_title": "PACS", "host": "h", "port": 0},
     "results.destinations.0.dimse.port"),
    ({"name": "a", "kind": "dicomweb", "url": "ftp://x"}, "results.destinations.0.dicomweb.url"),
    ({"name": "a b", "kind": "dicomweb", "url": "http://x"}, "results.destinations.0.dicomweb.name"),
    ({"name": "a", "kind": "dicomweb", "url": "http://x", "types": ["pdf"]}, "types"),
    ({"name": "a", "kind": "email"}, "results.destinations.0"),
])
def test_a_bad_destination_is_refused_naming_the_setting(tmp_path: Path, destination: dict[str, object],
                                                         message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        _load(tmp_path, {"destinations": [destination]})


def test_destination_names_are_unique(tmp_path: Path) -> None:
    twice = {"name": "a", "kind": "dicomweb", "url": "http://x"}
    with pytest.raises(ConfigError, match="listed twice"):
        _load(tmp_path, {"destinations": [twice, twice]})


def test_backoff_limits_are_consistent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="retry_max_seconds"):
        _load(tmp_path, {"retry_base_seconds": 60, "retry_max_seconds": 10})
