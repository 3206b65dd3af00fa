"""De-identification: DICOM PS3.15 Annex E Basic Profile with its options and keyed pseudonyms.

Library use::

    from radai.deid import Profile, PseudonymKey, deidentify
    clean = deidentify(ds, profile=Profile.from_names(["retain-longitudinal-modified-dates"]),
                       key=PseudonymKey.from_file(path))

Names are imported on first use, so that reading the settings does not load the engine.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DeidentificationRefused": "radai.deid.engine",
    "Profile": "radai.deid.engine",
    "deidentify": "radai.deid.engine",
    "Option": "radai.deid.options",
    "Region": "radai.deid.pixels",
    "PseudonymKey": "radai.deid.pseudonym",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
