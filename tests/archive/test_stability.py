"""Study stability: one event per change, after the quiet time, also across processes."""

from __future__ import annotations

import threading
import time

from pydicom import dcmread

from radai.app import Radai
from radai.archive.stability import StabilityMonitor, StableStudy
from radai.uids import derived_uid
from tests.fixtures.data import pydicom_data, to_bytes, with_new_uids


def _store(radai: Radai, salt: str, study_salt: str | None = None) -> str:
    ds = with_new_uids(dcmread(pydicom_data("MR2_UNCR.dcm")), salt)
    if study_salt is not None:
        ds.StudyInstanceUID = derived_uid("stability-test", study_salt)
    return radai.archive.store(to_bytes(ds), source="import").study_instance_uid


def _monitor(radai: Radai, quiet: float = 0.5) -> tuple[StabilityMonitor, list[StableStudy]]:
    events: list[StableStudy] = []
    monitor = StabilityMonitor(radai.db, quiet_seconds=quiet, poll_seconds=0.1)
    monitor.add_listener(lambda _s, e: events.append(e))
    return monitor, events


def test_fires_only_after_the_quiet_time(radai: Radai) -> None:
    monitor, events = _monitor(radai, quiet=1.5)
    uid = _store(radai, "a")
    assert monitor.check() == []  # arrived just now
    time.sleep(1.6)
    fired = monitor.check()
    assert [e.study_instance_uid for e in fired] == [uid]
    assert monitor.check() == []  # once per change
    assert len(events) == 1


def test_a_new_instance_makes_the_study_fire_again(radai: Radai) -> None:
    monitor, events = _monitor(radai, quiet=0.3)
    uid = _store(radai, "a", study_salt="s")
    time.sleep(0.4)
    monitor.check()
    _store(radai, "b", study_salt="s")
    assert monitor.check() == []  # the new instance restarted the quiet time
    time.sleep(0.4)
    fired = monitor.check()
    assert [e.study_instance_uid for e in fired] == [uid]
    assert [e.change_seq for e in events] == [1, 2]


def test_duplicates_are_not_a_change(radai: Radai) -> None:
    monitor, events = _monitor(radai, quiet=0.2)
    _store(radai, "a")
    time.sleep(0.3)
    monitor.check()
    _store(radai, "a")  # the same instance again
    time.sleep(0.3)
    assert monitor.check() == []
    assert len(events) == 1


def test_a_failing_listener_rolls_back_and_the_event_fires_later(radai: Radai) -> None:
    monitor = StabilityMonitor(radai.db, quiet_seconds=0.1, poll_seconds=0.1)
    calls: list[int] = []

    def flaky(_s: object, event: StableStudy) -> None:
        calls.append(event.change_seq)
        if len(calls) == 1:
            raise RuntimeError("downstream not ready")

    monitor.add_listener(flaky)
    _store(radai, "a")
    time.sleep(0.2)
    assert monitor.check() == []
    assert len(monitor.check()) == 1
    assert calls == [1, 1]


def test_two_monitors_racing_fire_each_event_once(radai: Radai) -> None:
    events: list[str] = []
    lock = threading.Lock()

    def record(_s: object, event: StableStudy) -> None:
        with lock:
            events.append(event.study_instance_uid)

    monitors = []
    for _ in range(3):
        m = StabilityMonitor(radai.db, quiet_seconds=0.2, poll_seconds=0.05)
        m.add_listener(record)
        monitors.append(m)
    uids = {_store(radai, f"r{i}") for i in range(6)}
    for m in monitors:
        m.start()
    time.sleep(1.5)
    for m in monitors:
        m.stop()
    assert sorted(events) == sorted(uids)


def test_events_survive_a_restart(radai: Radai) -> None:
    uid = _store(radai, "a")  # stored while no monitor runs
    time.sleep(0.3)
    monitor, events = _monitor(radai, quiet=0.2)
    assert [e.study_instance_uid for e in monitor.check()] == [uid]
    assert len(events) == 1
