"""Manifests: the built-in ones are valid; every error names the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from radai.models.manifest import FixedWindow, LifecycleState, ManifestError, load_manifest
from radai.models.registry import builtin_packages_dir
from tests.models.helpers import write_package


def test_builtin_manifests_are_valid_and_start_live() -> None:
    brain = load_manifest(builtin_packages_dir() / "brain_tumor_mri")
    pneumonia = load_manifest(builtin_packages_dir() / "pneumonia_peds" / "model.yaml")
    assert brain.id == "brain-tumor-mri" and pneumonia.id == "pneumonia-peds"
    assert brain.lifecycle.state is LifecycleState.LIVE
    assert pneumonia.lifecycle.state is LifecycleState.LIVE
    assert pneumonia.licence == "licence unknown — research use only"
    assert pneumonia.outputs.findings[0].code.value == "233604007"
    assert pneumonia.outputs.findings[0].code.scheme == "SCT"
    assert [f.label for f in brain.outputs.findings] == ["glioma", "meningioma", "pituitary tumour"]
    assert pneumonia.input.resize == "nearest" and brain.input.resize == "bicubic"


@pytest.mark.parametrize(("changes", "message"), [
    ({"outputs.findings.0.threshold": 1.5},
     "model.yaml: outputs.findings.0.threshold: must be between 0 and 1"),
    ({"outputs.findings.1.index": 9}, "model.yaml: outputs: findings.1.index 9 is not below classes (4)"),
    ({"scope.modalities": []}, "model.yaml: scope.modalities:"),
    ({"scope.colour": "red"}, "model.yaml: scope.colour: unknown field"),
    ({"vendor": ...}, "model.yaml: vendor: required field is missing"),
    ({"id": "Brain Tumour"}, "model.yaml: id: must be 1-64 lower-case letters"),
    ({"input.layout": "HWC"}, "model.yaml: input.layout:"),
    ({"input.normalisation": {"kind": "zscore"}}, "model.yaml: input.normalisation:"),
    ({"input.windowing": {"center": 40}}, "model.yaml: input.windowing.width: required field is missing"),
    ({"input.frames": "all"}, "model.yaml: input: frames: all is only for 3D models"),
    ({"runtime.kind": "tensorflow"}, "model.yaml: runtime.kind:"),
    ({"runtime.kind": "python"}, "model.yaml: runtime: a python runtime needs entry_point"),
    ({"scope.modalities": ["M R!"]},
     "model.yaml: scope.modalities: modality 'M R!' is not a DICOM code string"),
    ({"lifecycle.state": "production"}, "model.yaml: lifecycle.state:"),
])
def test_errors_name_the_field(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    folder = write_package(tmp_path / "pkg", changes)
    with pytest.raises(ManifestError) as err:
        load_manifest(folder)
    assert str(err.value).startswith(message), str(err.value)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text("id: [unclosed\n")
    with pytest.raises(ManifestError, match=r"model.yaml: not valid YAML at line \d"):
        load_manifest(tmp_path)
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "missing")


def test_fixed_window_and_numeric_version(tmp_path: Path) -> None:
    folder = write_package(tmp_path / "pkg", {"input.windowing": {"center": 40, "width": 400},
                                              "version": 2})
    m = load_manifest(folder)
    assert m.input.windowing == FixedWindow(center=40, width=400)
    assert m.version == "2"


def test_windowing_word_error_names_the_choices(tmp_path: Path) -> None:
    folder = write_package(tmp_path / "pkg", {"input.windowing": "bone"})
    with pytest.raises(ManifestError) as err:
        load_manifest(folder)
    assert str(err.value) == "model.yaml: input.windowing: Input should be 'none', 'dataset' or 'minmax'"
