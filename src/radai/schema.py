"""Every table of radai, gathered so that migrations and tests see the whole schema."""

from __future__ import annotations

import importlib

#: Modules that define tables, in dependency order. A new domain adds its own line.
TABLE_MODULES = (
    "radai.archive.models",
    "radai.models.models",
    "radai.auth.models",
    "radai.vendor.models",
    "radai.inference.models",
    "radai.routing.models",
    "radai.results.models",
    "radai.datasets.models",
    "radai.quality.models",
    "radai.worklist.models",
    "radai.monitoring.models",
)


def load_all() -> None:
    """Import every module that defines tables (registers them on ``Base.metadata``)."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
