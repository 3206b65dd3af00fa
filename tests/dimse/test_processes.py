"""``dimse.processes`` > 1: worker processes share the DICOM port and the archive."""

from __future__ import annotations

import io
import multiprocessing
import threading
import time
from collections.abc import Callable

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import func, select

from radai.archive.models import Instance
from radai.config import Settings
from tests.dimse.conftest import CT_IMAGE_STORAGE, STUDY_ROOT_FIND, Served, serve
from tests.fixtures.data import ct_series, to_bytes

STUDY, SERIES = "1.2.826.0.1.3680043.10.994.1", "1.2.826.0.1.3680043.10.994.1.1"


def _metric(served: Served, message: str, status: str) -> float:
    return served.radai.metrics.registry.get_sample_value(
        "radai_dimse_requests_total", {"message": message, "status": status}) or 0.0


def _send(served: Served, datasets: list[Dataset], statuses: list[int]) -> None:
    assoc = served.associate([CT_IMAGE_STORAGE, STUDY_ROOT_FIND])
    assert assoc.is_established
    try:
        statuses.extend(int(assoc.send_c_store(ds).Status) for ds in datasets)
    finally:
        assoc.release()


def test_two_processes_serve_one_port_and_one_archive(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings({"processes": 2})
    # ct_series reuses one dataset: keep a decoded copy of each slice.
    slices = [dcmread(io.BytesIO(to_bytes(ds)))
              for ds in ct_series(16, study_uid=STUDY, series_uid=SERIES, patient_id="P-PROC-1")]
    for served in serve(settings):
        workers = [p for p in multiprocessing.active_children() if p.name.startswith("radai-dimse-")]
        assert len(workers) == 1 and workers[0].is_alive()
        statuses: list[int] = []
        # Eight associations: the kernel spreads them over both processes.
        threads = [threading.Thread(target=_send, args=(served, slices[i::8], statuses)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [0] * 16
        with served.radai.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Instance)) == 16
        stored = sorted(p for p in served.radai.storage.root.rglob("*.dcm"))
        assert len(stored) == 16
        assert {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in stored} == \
            {str(ds.SOPInstanceUID) for ds in slices}
        # Whichever process answered, the counts reach this process's metrics.
        deadline = time.monotonic() + 10
        while _metric(served, "C-STORE", "success") < 16 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _metric(served, "C-STORE", "success") == 16
        assert served.echo_ok()
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("radai-dimse-")]
