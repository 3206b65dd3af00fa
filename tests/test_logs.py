"""Warnings taken per thread (radai.logs.thread_warnings): one thread reading a file
collects its own warnings and changes nothing for the others."""

from __future__ import annotations

import threading
import warnings

import pytest

from radai.archive.parse import Rejection, parse_instance
from radai.logs import thread_warnings
from tests.fixtures.data import pydicom_data


def test_warnings_of_another_thread_are_shown_not_collected_nor_raised() -> None:
    inside, done = threading.Event(), threading.Event()
    collected: list[str] = []

    def reader() -> None:
        with thread_warnings() as warned:
            warnings.warn("reader's own warning", UserWarning, stacklevel=1)
            inside.set()
            done.wait(10)
        collected.extend(str(w.message) for w in warned)

    t = threading.Thread(target=reader)
    t.start()
    assert inside.wait(10)
    try:
        # While the reader collects, this thread's warning is shown as usual (and not an
        # error, as a process-wide "error" filter would make it).
        with pytest.warns(UserWarning, match="main thread's warning"):
            warnings.warn("main thread's warning", UserWarning, stacklevel=1)
    finally:
        done.set()
        t.join(10)
    assert collected == ["reader's own warning"]


def test_every_truncated_file_is_refused_not_only_the_first() -> None:
    # pydicom reports a file ending inside encapsulated Pixel Data with a warning; the
    # same warning from the same code line must count every time, in any thread.
    data = pydicom_data("693_J2KR.dcm").read_bytes()
    cut = data[: len(data) // 2]
    messages: list[str] = []

    def parse_cut() -> None:
        for _ in range(3):
            with pytest.raises(Rejection) as info:
                parse_instance(cut)
            messages.append(info.value.message)

    threads = [threading.Thread(target=parse_cut) for _ in range(2)]
    for t in threads:
        t.start()
    parse_cut()
    for t in threads:
        t.join(30)
    assert messages == ["DICOM file is truncated"] * 9
