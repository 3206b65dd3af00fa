"""Logging set-up and the rule that keeps patient data out of logs.

Log lines never carry attribute values from a dataset (names, IDs, dates, free text).
Where a line must point at a study, series or instance, it uses :func:`uid_ref`: a short
one-way hash of the UID, the same one that names the instance's file.
"""

from __future__ import annotations

import hashlib
import logging
import sys


def uid_ref(uid: str) -> str:
    """A short, stable, one-way reference to a UID, safe to log."""
    return hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()[:12]


def setup_logging(level: str = "INFO") -> None:
    """Plain-text logs to stderr with time, level and logger name."""
    root = logging.getLogger()
    if any(getattr(h, "_radai", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._radai = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # pynetdicom logs dataset contents at DEBUG; keep it at INFO or above.
    logging.getLogger("pynetdicom").setLevel(max(logging.INFO, logging.getLevelName(level)))
