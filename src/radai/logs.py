"""Logging set-up and the rule that keeps patient data out of logs.

Log lines never carry attribute values from a dataset (names, IDs, dates, free text).
Where a line must point at a study, series or instance, it uses :func:`uid_ref`: a short
one-way hash of the UID, the same one that names the instance's file.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


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


# Warnings of this thread only. ``warnings.catch_warnings`` swaps the filters of the whole
# process: a thread turning warnings into errors (or muting them) while it reads a file
# changes what every other thread's warnings do, and two such blocks ending in the wrong
# order leave one thread's filters installed for good. radai's receivers, workers and
# the web app run side by side, so warnings are taken per thread instead: one
# process-wide hook hands a warning to the block of the thread that issued it, and shows
# any other warning as before.
_captures = threading.local()
_shown_before: Any = None
_PYDICOM_READER = r"pydicom\.filereader$"


def _show_or_capture(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     file: Any = None, line: str | None = None) -> None:
    captured = getattr(_captures, "warnings", None)
    if captured is not None:
        captured.append(warnings.WarningMessage(message, category, filename, lineno, file, line))
    elif _shown_before is not None:
        _shown_before(message, category, filename, lineno, file, line)


def _install_capture_hook() -> None:
    global _shown_before
    if warnings.showwarning is not _show_or_capture:
        # Whatever shows warnings now (Python's own, or a test runner's recorder) goes on
        # showing those of threads that do not capture.
        _shown_before = warnings.showwarning
        warnings.showwarning = _show_or_capture
    # pydicom's file reader's warnings reach every capture, not only the first time at a
    # code location (the "default" action): each cut-short file must be noticed.
    if not any(f[0] == "always" and f[3] is not None and f[3].pattern == _PYDICOM_READER
               for f in warnings.filters):
        warnings.filterwarnings("always", category=UserWarning, module=_PYDICOM_READER)


@contextmanager
def thread_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Collect, rather than show, the warnings this thread issues inside the block.

    Other threads are not affected. Warnings that the process's filters ignore are not
    collected either; those of pydicom's file reader always are.
    """
    _install_capture_hook()
    outer = getattr(_captures, "warnings", None)
    collected: list[warnings.WarningMessage] = []
    _captures.warnings = collected
    try:
        yield collected
    finally:
        _captures.warnings = outer
