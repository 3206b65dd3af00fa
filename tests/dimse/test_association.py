"""Who may associate: calling AE title allow-list and known peers (AE title and address)."""

from __future__ import annotations

import time
from collections.abc import Callable

from radai.config import Settings
from tests.dimse.conftest import VERIFICATION, Served, serve
from tests.fixtures.peers import LOOPBACK


def _rejection(assoc: object) -> tuple[int, int, int]:
    primitive = assoc.acceptor.primitive  # type: ignore[attr-defined]
    return int(primitive.result), int(primitive.result_source), int(primitive.diagnostic)


def test_calling_ae_title_allow_list(make_settings: Callable[..., Settings]) -> None:
    for served in serve(make_settings({"allowed_calling_aets": ["MODALITY1", "PACS"]})):
        allowed = served.associate([VERIFICATION], calling_ae="MODALITY1")
        assert allowed.is_established
        assert allowed.send_c_echo().Status == 0
        allowed.release()
        stranger = served.associate([VERIFICATION], calling_ae="STRANGER")
        assert stranger.is_rejected and not stranger.is_established
        # Rejected permanent, by the service user, calling AE title not recognised (PS3.8 §9.3.4).
        assert _rejection(stranger) == (0x01, 0x01, 0x03)
        assert served.associate([VERIFICATION], calling_ae="PACS").is_established


def test_require_known_peers_checks_ae_title_and_address(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings({
        "require_known_peers": True,
        "peers": [{"ae_title": "NEARBY", "host": LOOPBACK, "port": 104},
                  {"ae_title": "FARAWAY", "host": "192.0.2.7", "port": 104}],
    })
    for served in serve(settings):
        near = served.associate([VERIFICATION], calling_ae="NEARBY")
        assert near.is_established
        near.release()
        far = served.associate([VERIFICATION], calling_ae="FARAWAY")  # right title, wrong address
        assert far.is_rejected and _rejection(far) == (0x01, 0x01, 0x03)
        unknown = served.associate([VERIFICATION], calling_ae="UNKNOWN")
        assert unknown.is_rejected
        # Still serving the known peer afterwards.
        again = served.associate([VERIFICATION], calling_ae="NEARBY")
        assert again.is_established and again.send_c_echo().Status == 0
        assert _active(served) >= 1
        again.release()
        # Every connection, rejected ones included, is counted out again.
        deadline = time.monotonic() + 10
        while _active(served) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _active(served) == 0


def _active(served: Served) -> float:
    return served.radai.metrics.registry.get_sample_value("radai_dimse_associations_active") or 0.0
