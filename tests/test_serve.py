"""`radai serve` as a process: clean shutdown on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.fixtures.peers import start_radai


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_every_component_before_exiting(tmp_path: Path, sig: signal.Signals) -> None:
    server = start_radai(tmp_path / "server")
    server.proc.send_signal(sig)
    assert server.proc.wait(60) == 0
    log = server.log_text()
    # Components were stopped (leases handed back, index flushed) rather than the
    # process being ended by the signal's default action.
    assert "radai stopped" in log
