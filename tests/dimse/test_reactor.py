"""Associations that wait for work (radai.dimse.reactor) still end every way an association ends.

Released by the peer, aborted by the peer, ended by radai's network timeout, cut when radai
stops; many messages on one association; nothing left open afterwards (threads, the
wake-up pipes). The C-GET tests (test_retrieve) cover sub-operations on the requestor's own
association, where the association pauses while the service sends.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from pynetdicom import AE, build_context

from radai.config import Settings
from tests.dimse.conftest import CT_IMAGE_STORAGE, VERIFICATION, Served, serve
from tests.fixtures.data import ct_series
from tests.fixtures.peers import LOOPBACK


def _active(served: Served) -> float:
    return served.radai.metrics.registry.get_sample_value("radai_dimse_associations_active") or 0.0


def _wait_until(check: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _open_fds() -> int:
    """Open pipes and sockets of this process: what an association opens (its connection
    and its wake-up pipe). Files other parts of radai open meanwhile (the database, the
    archive) are not counted."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since the listing
            continue
        count += target.startswith(("pipe:", "socket:"))
    return count


def _association_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("AcceptorThread")]


def test_many_messages_then_release_leaves_nothing_open(server: Served) -> None:
    fds = _open_fds()
    for _ in range(10):
        assoc = server.associate([VERIFICATION])
        assert assoc.is_established
        assert all(int(assoc.send_c_echo().Status) == 0 for _ in range(20))
        assoc.release()
        assert assoc.is_released
    assert _wait_until(lambda: _active(server) == 0 and not _association_threads())
    # Each association's wake-up pipe is closed with it.
    assert _wait_until(lambda: _open_fds() <= fds)


def test_stores_on_one_association(server: Served) -> None:
    assoc = server.associate([build_context(CT_IMAGE_STORAGE, ["1.2.840.10008.1.2.1"])])
    try:
        statuses = [int(assoc.send_c_store(ds).Status)
                    for ds in ct_series(5, study_uid="1.2.826.0.1.3680043.10.994.1",
                                        series_uid="1.2.826.0.1.3680043.10.994.1.1")]
    finally:
        assoc.release()
    assert statuses == [0] * 5
    assert server.radai.archive.study_instances("1.2.826.0.1.3680043.10.994.1")


def test_peer_abort_ends_the_association(server: Served) -> None:
    assoc = server.associate([VERIFICATION])
    assert assoc.is_established
    assoc.abort()
    assert _wait_until(lambda: _active(server) == 0 and not _association_threads())
    assert server.echo_ok()


def test_network_timeout_ends_an_idle_association(make_settings: Callable[..., Settings]) -> None:
    gen = serve(make_settings({"network_timeout_seconds": 1.0}))
    served = next(gen)
    try:
        assoc = served.associate([VERIFICATION])
        assert assoc.is_established
        # Nothing is sent: radai's idle timer runs out and it aborts (pynetdicom's default).
        assert _wait_until(lambda: not assoc.is_established, 10)
        assert assoc.is_aborted
        assert _wait_until(lambda: _active(served) == 0)
        assert served.echo_ok()
    finally:
        gen.close()


def test_stopping_radai_ends_open_associations(make_settings: Callable[..., Settings]) -> None:
    gen = serve(make_settings())
    served = next(gen)
    ae = AE(ae_title="IDLE")
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(LOOPBACK, served.port, ae_title=served.ae_title)
    assert assoc.is_established
    started = time.monotonic()
    gen.close()  # radai.stop()
    assert time.monotonic() - started < 10
    assert _wait_until(lambda: not assoc.is_established)
    assert not _association_threads()
