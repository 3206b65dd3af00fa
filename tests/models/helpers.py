"""Model packages written by tests: the built-in manifests with changes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from radai.models.registry import builtin_packages_dir


def builtin_manifest(folder: str = "brain_tumor_mri") -> dict[str, Any]:
    """A built-in package's model.yaml as data."""
    data = yaml.safe_load((builtin_packages_dir() / folder / "model.yaml").read_text())
    assert isinstance(data, dict)
    return data


def write_package(folder: Path, changes: dict[str, Any] | None = None, *,
                  base: str = "brain_tumor_mri") -> Path:
    """A package folder whose model.yaml is a built-in one with ``changes`` (dotted keys)."""
    data = copy.deepcopy(builtin_manifest(base))
    for dotted, value in (changes or {}).items():
        set_path(data, dotted, value)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return folder


def set_path(data: Any, dotted: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists; a value of ``...`` deletes the key."""
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
