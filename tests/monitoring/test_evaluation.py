"""Window evaluation, alerts and their idempotency on constructed tasks (SQLite and PostgreSQL).

The reference is the version's first 40 clinical tasks (no validation run exists):
64×64 MR images with low scores. The window is the last 40 tasks: 128×128 CT images
with high scores, five of them technical defects.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import func, select

from radai.app import Radai
from radai.db import utcnow
from radai.models.api import DefectCategory
from radai.models.registry import ModelRecord
from radai.monitoring.drift import score_psi
from radai.monitoring.models import Alert, AlertState, TaskInputProfile
from radai.monitoring.monitor import Monitor
from radai.monitoring.service import VersionReport, evaluate_version
from radai.monitoring.settings import Metric
from tests.monitoring.conftest import CODE_KEY, run_task, store

RNG_SEED = 20250101


def monitor(radai: Radai) -> Monitor:
    return Monitor(db=radai.db, storage=radai.storage, registry=radai.models,
                   settings=radai.settings.monitoring)


def of_model(reports: list[VersionReport], model_id: str) -> VersionReport:
    (report,) = [r for r in reports if r.model_id == model_id]
    return report


def fill(radai: Radai, model: ModelRecord, *, image: str, scores: np.ndarray, salt: str,
         defects: int = 0, preprocess: np.ndarray | None = None) -> list[float]:
    """One study and task per score (the first ``defects`` studies become defects)."""
    kept = []
    for i, p in enumerate(scores):
        study = store(radai, image, f"{salt}-{i}")
        if i < defects:
            run_task(radai, study, model, defect=DefectCategory.INPUT_NOT_SUITED)
        else:
            run_task(radai, study, model, probability=float(p),
                     preprocess_ms=float(preprocess[i]) if preprocess is not None else 10.0)
            kept.append(float(p))
    return kept


@pytest.fixture
def drifted(mon_radai: Radai, live_model: ModelRecord) -> tuple[list[float], list[float], np.ndarray]:
    rng = np.random.default_rng(RNG_SEED)
    ref = fill(mon_radai, live_model, image="MR_small.dcm", scores=rng.beta(2, 8, 40), salt="ref")
    pre = rng.gamma(2.0, 30.0, 40)
    cur = fill(mon_radai, live_model, image="CT_small.dcm", scores=rng.beta(8, 2, 40), salt="cur",
               defects=5, preprocess=pre)
    return ref, cur, pre[5:]


def test_window_metrics_equal_their_definitions(mon_radai: Radai, live_model: ModelRecord,
                                                drifted: tuple[list[float], list[float], np.ndarray]) -> None:
    ref, cur, pre = drifted
    result = monitor(mon_radai).run_once()
    assert result.profiled == 80
    with mon_radai.db.session() as s:
        report = evaluate_version(s, model_id=live_model.model_id, version=live_model.version,
                                  settings=mon_radai.settings.monitoring)
    (w,) = report.windows
    assert w.reference.kind == "first" and len(w.reference.tasks) == 40
    assert (w.n_tasks, w.n_done) == (40, 35)
    assert w.defect_rate.successes == 5 and w.defect_rate.estimate == pytest.approx(5 / 40)
    assert w.defects_by_category == {"input_not_suited": 5}
    (f,) = w.findings
    assert f.code == CODE_KEY and f.n == 35
    assert f.positive_rate.successes == sum(p >= 0.5 for p in cur)
    assert f.drift.psi is not None and f.drift.ks is not None
    assert f.drift.psi.value == pytest.approx(score_psi(ref, cur, bins=10).value)
    assert f.drift.ks.statistic == pytest.approx(stats.ks_2samp(ref, cur).statistic)
    assert f.drift.ks.pvalue == pytest.approx(stats.ks_2samp(ref, cur).pvalue)
    assert f.drift.psi.value > 0.25
    rows = next(d for d in w.inputs if d.attribute == "rows")
    assert rows.ks is not None and rows.ks.statistic == pytest.approx(1.0)  # 64 vs 128 everywhere
    assert rows.n_reference == 40 and rows.n_current == 40
    maker = next(d for d in w.inputs if d.attribute == "manufacturer")
    assert maker.psi is not None and maker.psi.bins == ("GE MEDICAL SYSTEMS", "TOSHIBA_MEC")
    spacing = next(d for d in w.inputs if d.attribute == "pixel_spacing_mm")  # read from the files
    assert spacing.ks is not None and spacing.n_current == 40 and "0.661" in spacing.summary
    assert w.latency["preprocess"].count == 35
    assert w.latency["preprocess"].p95_ms == pytest.approx(float(np.percentile(np.round(pre, 3), 95)))
    breached = {(c.metric, c.subject) for c in w.breaches}
    assert {(Metric.SCORE_PSI, CODE_KEY), (Metric.SCORE_KS_PVALUE, CODE_KEY), (Metric.DEFECT_RATE, ""),
            (Metric.INPUT_KS_PVALUE, "rows"), (Metric.INPUT_KS_PVALUE, "columns"),
            (Metric.INPUT_PSI, "manufacturer")} <= breached
    opened = {(c.metric, c.subject) for c in result.changes if c.event == "opened"}
    assert opened == {(m.value, subject) for m, subject in breached}
    with mon_radai.db.session() as s:
        alerts = list(s.scalars(select(Alert)))
    assert all(a.state == AlertState.OPEN.value and a.window == "last-40" and a.site == "" for a in alerts)
    psi_alert = next(a for a in alerts if a.metric == "score_psi")
    assert psi_alert.value == pytest.approx(f.drift.psi.value) and psi_alert.threshold == 0.25
    assert psi_alert.sample_size == 35
    # Suspension is off by default: the model stays live.
    assert mon_radai.models.get(live_model.model_id, live_model.version).state.value == "live"


def test_evaluation_is_idempotent_across_processes_and_alerts_close(
        mon_radai: Radai, live_model: ModelRecord,
        drifted: tuple[list[float], list[float], np.ndarray]) -> None:
    first = monitor(mon_radai).run_once()
    opened = len(first.changes)
    assert opened >= 5
    # Two more "processes" evaluate at the same moment: nothing is opened twice.
    results = []
    threads = [threading.Thread(target=lambda: results.append(monitor(mon_radai).run_once()))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [len(r.changes) for r in results] == [0, 0]
    with mon_radai.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == opened
        assert s.scalar(select(func.count()).select_from(TaskInputProfile)) == 80
    # The model is fine again: 40 new studies like the reference (its very scores) fill the window.
    fill(mon_radai, live_model, image="MR_small.dcm", scores=np.array(drifted[0]), salt="again")
    closing = monitor(mon_radai).run_once()
    closed = {c.metric for c in closing.changes if c.event == "closed"}
    assert {"score_psi", "score_ks_pvalue", "defect_rate", "input_ks_pvalue", "input_psi"} <= closed
    assert not [c for c in closing.changes if c.event == "opened"]
    with mon_radai.db.session() as s:
        alerts = list(s.scalars(select(Alert)))
    assert len(alerts) == opened
    assert all(a.state == "closed" and a.open_key is None and a.closed_at is not None for a in alerts)
    # A new breach opens a new alert row; the closed ones stay as history.
    rng = np.random.default_rng(RNG_SEED + 1)
    fill(mon_radai, live_model, image="CT_small.dcm", scores=rng.beta(8, 2, 40), salt="third")
    reopened = monitor(mon_radai).run_once()
    assert {c.metric for c in reopened.changes if c.event == "opened"} >= {"score_psi"}
    with mon_radai.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) > opened


def test_too_few_studies_open_nothing(mon_radai: Radai, live_model: ModelRecord) -> None:
    for i in range(12):
        run_task(mon_radai, store(mon_radai, "CT_small.dcm", f"few-{i}"), live_model,
                 defect=DefectCategory.MODEL_ERROR)
    result = monitor(mon_radai).run_once()
    assert result.changes == []
    (w,) = of_model(result.reports, live_model.model_id).windows
    check = next(c for c in w.checks if c.metric is Metric.DEFECT_RATE)
    assert check.value == 1.0 and not check.evaluated and "fewer than 20" in check.note


def test_day_windows_and_sites(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> None:
    from tests.inference.packages import install_live, write_onnx_package
    from tests.monitoring.conftest import make_radai

    tmp = tmp_path_factory.mktemp("sites")
    radai = make_radai(tmp, db_url, monitoring={
        "windows": [{"name": "7d", "days": 7}], "site_by": "institution", "min_studies": 10,
        "min_psi_studies": 10,
        "reference": {"kind": "preceding", "days": 30}})
    try:
        model = install_live(radai.models, write_onnx_package(tmp / "pkg", "test-onnx", threshold=0.5))
        now = utcnow()
        rng = np.random.default_rng(3)
        usual = rng.beta(2, 8, 15)
        # Three weeks ago both sites looked alike (the reference: the 30 days before the window).
        for site in ("NORTH", "SOUTH"):
            for i, p in enumerate(usual):
                uid = store(radai, "MR_small.dcm", f"old-{site}-{i}", InstitutionName=site)
                run_task(radai, uid, model, probability=float(p),
                         finished_at=now - timedelta(days=20, hours=i))
        # This week SOUTH sends other images and scores high; NORTH does not change.
        high = rng.beta(8, 2, 15)
        for site, image, scores in (("NORTH", "MR_small.dcm", usual), ("SOUTH", "CT_small.dcm", high)):
            for i, p in enumerate(scores):
                uid = store(radai, image, f"new-{site}-{i}", InstitutionName=site)
                run_task(radai, uid, model, probability=float(p),
                         finished_at=now - timedelta(days=1, hours=i))
        result = monitor(radai).run_once(now=now)
        report = of_model(result.reports, model.model_id)
        assert report.sites == ("NORTH", "SOUTH")
        by_site = {w.site: w for w in report.windows}
        assert set(by_site) == {"", "NORTH", "SOUTH"}
        assert [w.n_tasks for w in report.windows] == [30, 15, 15]
        assert all(w.reference.kind == "preceding" for w in report.windows)
        assert len(by_site["NORTH"].reference.tasks) == 15 and len(by_site[""].reference.tasks) == 30
        north, south = by_site["NORTH"].findings[0].drift, by_site["SOUTH"].findings[0].drift
        assert north.psi is not None and south.psi is not None and north.ks is not None
        assert north.psi.value == pytest.approx(0.0, abs=1e-12) and north.ks.pvalue == pytest.approx(1.0)
        assert south.psi.value > 1.0
        alerted = {(c.site, c.metric) for c in result.changes if c.event == "opened"}
        assert {("SOUTH", "score_psi"), ("SOUTH", "score_ks_pvalue"), ("SOUTH", "input_ks_pvalue")} <= alerted
        assert not [a for a in alerted if a[0] == "NORTH"]
        # The dashboard's history: every task of the last 30 days, by the day it ended.
        assert sum(d.n_tasks for d in report.days) == 60
        assert [d.day for d in report.days] == sorted(d.day for d in report.days)
    finally:
        radai.stop()
