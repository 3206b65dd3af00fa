"""Logging set-up and the rule that keeps patient data out of logs.

Log lines never carry attribute values from a dataset (names, IDs, dates, free text).
Where a line must point at a study, series or instance, it uses :func:`uid_ref`: a short
one-way hash of the UID, the same one that names the instance's file.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from typing import TextIO


def uid_ref(uid: str) -> str:
    """A short, stable, one-way reference to a UID, safe to log."""
    return hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()[:12]


def keep_values_out_of_pydicom_logs() -> None:
    """Stop pydicom from logging element values while reading.

    pydicom's read validation warns with the offending value ("Invalid value for VR
    UI: '…'") through the ``pydicom`` logger, which would put patient data in logs.
    radai checks what it needs itself (radai.archive.parse) and reports attribute
    names only.
    """
    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE
    logging.getLogger("pydicom").setLevel(logging.ERROR)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted.

    A handler holding the stream it found at set-up keeps writing to it after it has
    been replaced (and perhaps closed), e.g. by a command run inside another program.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(level: str = "INFO") -> None:
    """Plain-text logs to stderr with time, level and logger name."""
    keep_values_out_of_pydicom_logs()
    root = logging.getLogger()
    if any(getattr(h, "_radai", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._radai = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # pynetdicom logs dataset contents at DEBUG; keep it at INFO or above.
    logging.getLogger("pynetdicom").setLevel(max(logging.INFO, logging.getLevelName(level)))
