"""The registry on SQLite and PostgreSQL: sync, lifecycle, import, lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from radai.app import Radai
from radai.models.api import DefectCategory, ModelDefect
from radai.models.manifest import LifecycleState, ManifestError
from radai.models.registry import InvalidTransition, ModelNotFound, RegistryError

S = LifecycleState
BRAIN = ("brain-tumor-mri", "0.1.1")
PNEUMONIA = ("pneumonia-peds", "0.3.0")


def test_sync_registers_builtins_live_and_is_idempotent(radai: Radai) -> None:
    records = {r.ref: r for r in radai.models.list()}
    assert set(records) == {"brain-tumor-mri@0.1.1", "pneumonia-peds@0.3.0"}
    assert all(r.state is S.LIVE and r.origin == "builtin" for r in records.values())
    assert Path(records["pneumonia-peds@0.3.0"].source, "model.yaml").is_file()
    radai.models.sync()
    radai.models.sync()
    assert len(radai.models.list()) == 2
    history = radai.models.history(*BRAIN)
    assert [(h.from_state, h.to_state, h.reason) for h in history] == [("", "live", "registered (builtin)")]
    assert {r.model_id for r in radai.models.live()} == {"brain-tumor-mri", "pneumonia-peds"}


def test_lifecycle_transitions_are_checked_and_recorded(radai: Radai) -> None:
    rec = radai.models.set_state(*PNEUMONIA, S.SUSPENDED, reason="agreement fell", actor="qa")
    assert rec.state is S.SUSPENDED
    assert [r.model_id for r in radai.models.live()] == ["brain-tumor-mri"]
    # A state changed by people survives the next start-up.
    radai.models.sync()
    assert radai.models.get(*PNEUMONIA).state is S.SUSPENDED
    with pytest.raises(InvalidTransition, match="cannot go from suspended to approved"):
        radai.models.set_state(*PNEUMONIA, S.APPROVED, reason="x", actor="qa")
    radai.models.set_state(*PNEUMONIA, S.LIVE, reason="fixed", actor="admin")
    radai.models.set_state(*PNEUMONIA, S.LIVE, reason="again", actor="admin")  # no change
    radai.models.set_state(*PNEUMONIA, S.RETIRED, reason="replaced", actor="admin")
    with pytest.raises(InvalidTransition, match=r"allowed from retired: none"):
        radai.models.set_state(*PNEUMONIA, S.LIVE, reason="back", actor="admin")
    with pytest.raises(RegistryError, match="needs a reason"):
        radai.models.set_state(*BRAIN, S.SUSPENDED, reason=" ", actor="admin")
    history = [(h.from_state, h.to_state, h.actor, h.reason) for h in radai.models.history(*PNEUMONIA)]
    assert history == [("", "live", "radai", "registered (builtin)"),
                       ("live", "suspended", "qa", "agreement fell"),
                       ("suspended", "live", "admin", "fixed"),
                       ("live", "retired", "admin", "replaced")]


def test_unknown_models(radai: Radai) -> None:
    with pytest.raises(ModelNotFound):
        radai.models.get("no-such-model")
    with pytest.raises(ModelNotFound):
        radai.models.set_state("brain-tumor-mri", "9.9", S.LIVE, reason="x", actor="y")
    with pytest.raises(ModelDefect) as err:
        radai.models.load("no-such-model", "1")
    assert err.value.category is DefectCategory.SERVICE_UNAVAILABLE


def test_import_copies_the_package_and_starts_as_draft(radai: Radai, tmp_path: Path) -> None:
    from tests.models.helpers import write_package

    for version in ("1.9.0", "1.10.0"):
        pkg = write_package(tmp_path / f"pkg-{version}", {
            "id": "acme-brain", "version": version, "lifecycle.state": "draft"})
        (pkg / "README.txt").write_text("vendor notes")
        rec = radai.models.import_package(pkg)
        assert rec.state is S.DRAFT and rec.origin == "imported"
        target = radai.settings.data_dir / "models" / "acme-brain" / version
        assert Path(rec.source) == target.resolve()
        assert (target / "README.txt").read_text() == "vendor notes"
    # Newest by version order, not by text order.
    assert radai.models.get("acme-brain").version == "1.10.0"
    with pytest.raises(RegistryError, match="already registered"):
        radai.models.import_package(tmp_path / "pkg-1.9.0")
    # An imported draft cannot be enabled before it is validated and approved.
    with pytest.raises(InvalidTransition, match="cannot go from draft to live"):
        radai.models.set_state("acme-brain", "1.9.0", S.LIVE, reason="go", actor="admin")
    for state in (S.VALIDATED, S.APPROVED, S.LIVE):
        radai.models.set_state("acme-brain", "1.9.0", state, reason="validation passed", actor="qa")
    assert "acme-brain" in {r.model_id for r in radai.models.live()}
    # Imported packages are found again from the data directory by a fresh registry.
    radai.models.sync()
    assert radai.models.get("acme-brain", "1.9.0").state is S.LIVE


def test_invalid_import_names_the_field_and_leaves_nothing(radai: Radai, tmp_path: Path) -> None:
    from tests.models.helpers import write_package

    bad = write_package(tmp_path / "bad", {"id": "acme", "outputs.findings.0.threshold": -0.1})
    with pytest.raises(ManifestError, match=r"outputs\.findings\.0\.threshold: must be between 0 and 1"):
        radai.models.import_package(bad)
    missing = write_package(tmp_path / "missing", {"id": "acme", "runtime.file": "weights/model.onnx"})
    with pytest.raises(ManifestError, match=r"runtime\.file: weights/model\.onnx does not exist"):
        radai.models.import_package(missing)
    outside = write_package(tmp_path / "outside", {"id": "acme", "runtime.file": "../bad/model.yaml"})
    with pytest.raises(ManifestError, match=r"runtime\.file: \.\./bad/model\.yaml is outside the package"):
        radai.models.import_package(outside)
    live = write_package(tmp_path / "live", {"id": "acme"})
    with pytest.raises(ManifestError, match=r"lifecycle\.state: an imported package starts as draft"):
        radai.models.import_package(live)
    assert not (radai.settings.data_dir / "models" / "acme").exists()
    with pytest.raises(ModelNotFound):
        radai.models.get("acme")


def test_load_is_cached(radai: Radai) -> None:
    first = radai.models.load(*BRAIN, runtime="onnx")
    assert radai.models.load(*BRAIN, runtime="onnx") is first
    assert (first.model_id, first.version) == BRAIN


def test_installed_distribution_offers_a_package(radai: Radai, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution with an entry point in the group ``radai.models`` is registered."""
    import sys

    from tests.models.helpers import write_package

    site = tmp_path / "site"
    write_package(site / "acme_models", {"id": "acme-installed", "version": "3.1"})
    (site / "acme_models" / "__init__.py").write_text('"""ACME model package."""\n')
    info = site / "acme_models-3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-models\nVersion: 3.1\n")
    (info / "entry_points.txt").write_text("[radai.models]\nacme = acme_models\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "acme_models", raising=False)  # from the other backend's run
    radai.models.sync()
    record = radai.models.get("acme-installed")
    assert (record.version, record.origin, record.state) == ("3.1", "installed", S.LIVE)
    assert Path(record.source) == (site / "acme_models").resolve()
    assert "acme_models" in sys.modules
