"""Monitoring samples: drawn reproducibly, assigned to readers, agreement once reviewed.

Verdicts are recorded and reports signed through the worklist's own service functions
(radai.worklist.service, radai.worklist.signing), which store the signed report as a
DICOM SR in the archive, as a radiologist's signature does.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from statsmodels.stats.proportion import proportion_confint

from radai.app import Radai, build_web_app
from radai.archive.models import Study
from radai.auth.models import AuditEntry
from radai.auth.roles import Role
from radai.db import utcnow
from radai.inference.models import Finding
from radai.models.registry import ModelRecord
from radai.monitoring.samples import SampleError, assigned_studies, create_sample, sample_report
from radai.monitoring.service import evaluate_version
from radai.worklist.service import add_missed_finding, record_verdict
from radai.worklist.signing import sign_report
from tests.monitoring.conftest import CODE, CODE_KEY, add_user, bearer, run_task, store, token_for

#: 12 positive and 18 negative AI results.
SCORES = [0.9, 0.2, 0.3, 0.7, 0.1, 0.15, 0.8, 0.25, 0.05, 0.6] * 3


@pytest.fixture
def processed(mon_radai: Radai, live_model: ModelRecord) -> list[str]:
    for name, role in (("rad1", Role.RADIOLOGIST), ("rad2", Role.RADIOLOGIST), ("vend", Role.VENDOR)):
        add_user(mon_radai, name, role)
    uids = []
    for i, p in enumerate(SCORES):
        uid = store(mon_radai, "CT_small.dcm", f"s-{i}")
        run_task(mon_radai, uid, live_model, probability=p)
        uids.append(uid)
    return uids


def draw(radai: Radai, model: ModelRecord, *, size: int = 10, seed: int | None = 42, method: str = "simple",
         readers: tuple[str, ...] = ("rad1", "rad2")) -> tuple[int, list[tuple[str, str, str]]]:
    now = utcnow()
    with radai.db.transaction() as s:
        sample = create_sample(s, model_id=model.model_id, model_version=model.version,
                               period_start=now - timedelta(hours=1), period_end=now + timedelta(minutes=1),
                               readers=readers, created_by="admin", size=size, seed=seed,
                               method=method)  # type: ignore[arg-type]
        report = sample_report(s, sample_id=sample.id)
        return sample.id, [(x.study_instance_uid, x.reader, x.stratum) for x in report.studies]


def test_samples_are_reproducible_and_assigned(mon_radai: Radai, live_model: ModelRecord,
                                               processed: list[str]) -> None:
    first_id, first = draw(mon_radai, live_model)
    _, again = draw(mon_radai, live_model)
    _, other = draw(mon_radai, live_model, seed=7)
    assert len(first) == 10 and len({uid for uid, _, _ in first}) == 10
    assert set(uid for uid, _, _ in first) <= set(processed)
    assert again == first  # same data, size and seed: the same studies in the same order
    assert other != first
    assert [reader for _, reader, _ in first] == ["rad1", "rad2"] * 5
    with mon_radai.db.session() as s:
        mine = assigned_studies(s, reader="rad1")
    assert {uid for uid, reader, _ in first if reader == "rad1"} <= set(mine)
    assert all(first_id in samples for uid, samples in mine.items() if uid in {u for u, _, _ in first})
    # Stratified: proportional to the 12 positive and 18 negative studies.
    _, strat = draw(mon_radai, live_model, method="stratified")
    assert sorted(st for _, _, st in strat) == ["negative"] * 6 + ["positive"] * 4
    # Asking for more than exist draws them all.
    sid, everything = draw(mon_radai, live_model, size=80, seed=None)
    assert len(everything) == 30
    with mon_radai.db.session() as s:
        assert sample_report(s, sample_id=sid).sample.size_requested == 80


@pytest.mark.parametrize(("change", "message"), [
    ({"readers": ("vend",)}, "readers: a named reader may not review"),
    ({"readers": ("nobody",)}, "readers: a named reader is not an active user"),
    ({"readers": ()}, "readers: at least one reader"),
    ({"size": 0}, "size must be at least 1"),
    ({"method": "cluster"}, "method must be simple or stratified"),
])
def test_bad_samples_are_refused(mon_radai: Radai, live_model: ModelRecord, processed: list[str],
                                 change: dict[str, object], message: str) -> None:
    with pytest.raises(SampleError, match=message):
        draw(mon_radai, live_model, **change)  # type: ignore[arg-type]


def review(radai: Radai, study_uid: str, reader: str, index: int) -> str:
    """The reader's verdict on the study's finding (agree on even positions, else disagree on
    positives; negatives agreed but every third one has a missed finding), signed."""
    with radai.db.transaction() as s:
        study_pk = s.scalar(select(Study.id).where(Study.study_instance_uid == study_uid))
        finding = s.scalar(select(Finding).where(Finding.study_pk == study_pk))
        assert study_pk is not None and finding is not None
        if finding.positive:
            outcome = "tp" if index % 2 == 0 else "fp"
            record_verdict(s, finding_id=finding.id, reader=reader,
                           verdict="agree" if outcome == "tp" else "disagree")
        elif index % 3 == 0:
            outcome = "fn"
            add_missed_finding(s, study_pk=study_pk, reader=reader, code_value=CODE.value,
                               code_scheme=CODE.scheme, code_meaning=CODE.meaning, model_id="test-onnx")
        else:
            outcome = "tn"
            record_verdict(s, finding_id=finding.id, reader=reader, verdict="agree")
    sign_report(db=radai.db, archive=radai.archive, study_instance_uid=study_uid, reader=reader,
                text="Reviewed for the monitoring sample.")
    return outcome


def test_agreement_on_a_reviewed_sample(mon_radai: Radai, live_model: ModelRecord,
                                        processed: list[str]) -> None:
    with TestClient(build_web_app(mon_radai), follow_redirects=False) as client:
        add_user(mon_radai, "boss", Role.ADMIN)
        admin = bearer(token_for(client, "boss"))
        now = utcnow()
        body = {"model_id": "test-onnx", "model_version": "1.0", "size": 12, "seed": 2024,
                "period_start": (now - timedelta(hours=1)).isoformat(),
                "period_end": (now + timedelta(minutes=1)).isoformat(), "readers": ["rad1", "rad2"]}
        radiologist = bearer(token_for(client, "rad1"))
        assert client.post("/api/v1/monitoring/samples", json=body, headers=radiologist).status_code == 403
        naive = {**body, "period_start": "2025-01-01T00:00:00"}
        assert client.post("/api/v1/monitoring/samples", json=naive, headers=admin).status_code == 422
        created = client.post("/api/v1/monitoring/samples", json=body, headers=admin)
        assert created.status_code == 201, created.text
        sample = created.json()
        drawn = (sample["size_drawn"], sample["eligible"], sample["seed"], sample["reviewed"])
        assert drawn == (12, 30, 2024, 0)
        with mon_radai.db.session() as s:
            audited = s.scalar(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.action == "monitoring.sample.create"))
        assert audited == 12  # one row per study named in the answer

        # Ten of the twelve are reviewed and signed by their assigned readers.
        outcomes = [review(mon_radai, st["study_instance_uid"], st["reader"], st["position"])
                    for st in sample["studies"][:10]]
        got = client.get(f"/api/v1/monitoring/samples/{sample['id']}", headers=admin)
        assert got.status_code == 200
        report = got.json()
        assert report["reviewed"] == 10
        assert [st["reviewed"] for st in report["studies"]] == [True] * 10 + [False] * 2
        (agreement,) = report["agreement"]
        assert agreement["code"] == CODE_KEY
        a = agreement["agreement"]
        counts = {k: outcomes.count(k) for k in ("tp", "fp", "tn", "fn")}
        assert {k: a[k] for k in counts} == counts
        assert a["unreviewed"] == 0 and a["uncertain"] == 0
        assert all(counts.values()), counts  # the sample holds every outcome
        tp, fn = counts["tp"], counts["fn"]
        lo, hi = proportion_confint(tp, tp + fn, alpha=0.05, method="wilson")
        assert a["sensitivity"]["estimate"] == pytest.approx(tp / (tp + fn))
        assert a["sensitivity"]["lower"] == pytest.approx(lo)
        assert a["sensitivity"]["upper"] == pytest.approx(hi)
        spec = a["specificity"]
        assert (spec["successes"], spec["total"]) == (counts["tn"], counts["tn"] + counts["fp"])
        assert client.get("/api/v1/monitoring/samples/999", headers=admin).status_code == 404

    # The same verdicts are the model's agreement in its rolling window.
    with mon_radai.db.session() as s:
        version = evaluate_version(s, model_id="test-onnx", version="1.0",
                                   settings=mon_radai.settings.monitoring)
    c = version.windows[0].findings[0].agreement.counts
    assert (c.tp, c.fp, c.tn, c.fn) == (counts["tp"], counts["fp"], counts["tn"], counts["fn"])
    assert sum(p.agreement[CODE_KEY].counts.reviewed for p in version.days if CODE_KEY in p.agreement) == 10
