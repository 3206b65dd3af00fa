"""Monitoring samples: random samples of a model's processed studies for review.

**Eligible** are the studies with a clinical task of the model version that ended
``done`` in ``[period_start, period_end)``; each study once, with the latest such task
(its AI result is what the reader checks). Technical defects have no findings to judge
and are not eligible.

**Drawing** is reproducible: a numpy ``Generator`` (PCG64) seeded with ``seed`` (chosen
at random and stored when not given) draws without replacement from the eligible
studies in index order, so the same data, size and seed give the same sample.

- ``simple``: a simple random sample of ``size`` studies (all of them when fewer exist).
- ``stratified``: the studies are split by AI result (``positive``: at least one
  positive finding; ``negative``), and each stratum gets a share of ``size``
  proportional to its share of the eligible studies (largest remainder rounding), so
  that the rarer result is neither over- nor under-represented by chance; each stratum
  is then sampled simply.

**Assignment**: the drawn studies are assigned to the given readers in turn (round
robin in order of drawing), one reader per study. Readers see their assigned studies
through :func:`assigned_studies` (the worklist may filter on it).

**Agreement on the sample** (:func:`sample_report`) counts, for every drawn study whose
report was signed, the AI decisions of the drawn task against the latest signed
report's verdicts, with radai.monitoring.agreement's definitions and Wilson intervals.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from radai.archive.models import Study
from radai.auth.roles import Capability, Role, capabilities_of
from radai.db import utcnow
from radai.inference.models import Finding, InferenceTask, TaskPurpose, TaskState
from radai.monitoring.agreement import Agreement, ReviewedCase, agreement, count_outcomes
from radai.monitoring.data import Score, code_key, signed_labels
from radai.monitoring.models import MonitoringSample, SampleStudy

Method = Literal["simple", "stratified"]
METHODS: tuple[str, ...] = ("simple", "stratified")


class SampleError(ValueError):
    """A sample that cannot be drawn as asked; the message names the parameter."""


class SampleNotFound(LookupError):
    """No sample with this id."""


@dataclass(frozen=True)
class _Eligible:
    study_pk: int
    task_pk: int
    stratum: str


def _eligible(s: Session, *, model_id: str, version: str, start: datetime, end: datetime) -> list[_Eligible]:
    latest = (select(InferenceTask.study_pk, func.max(InferenceTask.id).label("task_pk"))
              .where(InferenceTask.model_id == model_id, InferenceTask.model_version == version,
                     InferenceTask.purpose == TaskPurpose.CLINICAL.value,
                     InferenceTask.state == TaskState.DONE.value,
                     InferenceTask.finished_at >= start, InferenceTask.finished_at < end)
              .group_by(InferenceTask.study_pk).subquery())
    positive = (select(Finding.task_pk).where(Finding.positive.is_(True)).distinct().subquery())
    rows = s.execute(select(latest.c.study_pk, latest.c.task_pk, positive.c.task_pk)
                     .outerjoin(positive, positive.c.task_pk == latest.c.task_pk)
                     .order_by(latest.c.study_pk)).all()
    return [_Eligible(int(study), int(task), "positive" if pos is not None else "negative")
            for study, task, pos in rows]


def _allocate(sizes: Sequence[int], n: int) -> list[int]:
    """Proportional allocation of ``n`` over strata of ``sizes`` (largest remainder)."""
    total = sum(sizes)
    exact = [n * k / total for k in sizes]
    alloc = [int(e) for e in exact]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - alloc[i]), i))
    for i in order[: n - sum(alloc)]:
        alloc[i] += 1
    return [min(a, k) for a, k in zip(alloc, sizes, strict=True)]


def draw(eligible: Sequence[_Eligible], *, size: int, seed: int, method: Method) -> list[_Eligible]:
    """The drawn studies in order of drawing (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n = min(size, len(eligible))
    if method == "simple":
        return [eligible[int(i)] for i in rng.choice(len(eligible), size=n, replace=False)]
    strata = {name: [e for e in eligible if e.stratum == name] for name in ("positive", "negative")}
    sizes = [len(v) for v in strata.values()]
    drawn: list[_Eligible] = []
    for (_, members), k in zip(strata.items(), _allocate(sizes, n), strict=True):
        if k:
            drawn.extend(members[int(i)] for i in rng.choice(len(members), size=k, replace=False))
    return drawn


def _check_readers(s: Session, readers: Sequence[str]) -> list[str]:
    from radai.auth.service import get_user

    if not readers:
        raise SampleError("readers: at least one reader is needed")
    checked: list[str] = []
    for name in readers:
        user = get_user(s, username=name)
        if user is None or user.disabled:
            raise SampleError("readers: a named reader is not an active user")
        roles = [Role(r.role) for r in user.roles]
        if Capability.REVIEW not in capabilities_of(roles):
            raise SampleError("readers: a named reader may not review (needs the review capability)")
        if user.username not in checked:
            checked.append(user.username)
    return checked


def create_sample(s: Session, *, model_id: str, model_version: str, period_start: datetime,
                  period_end: datetime, readers: Sequence[str], created_by: str, size: int = 80,
                  seed: int | None = None, method: Method = "simple") -> MonitoringSample:
    """Draw a sample and assign it to ``readers`` (in the caller's transaction).

    Raises :class:`SampleError` for an empty period, a size below 1, an unknown method,
    readers who are not active users allowed to review, or no eligible study.
    """
    if period_end <= period_start:
        raise SampleError("period_end must be after period_start")
    if size < 1:
        raise SampleError("size must be at least 1")
    if method not in METHODS:
        raise SampleError("method must be simple or stratified")
    names = _check_readers(s, readers)
    eligible = _eligible(s, model_id=model_id, version=model_version, start=period_start, end=period_end)
    if not eligible:
        raise SampleError("no study processed by this model version in the period")
    seed = secrets.randbits(62) if seed is None else seed
    if not 0 <= seed < 2**63:
        raise SampleError("seed must be within 0..2**63-1")
    drawn = draw(eligible, size=size, seed=seed, method=method)
    now = utcnow()
    sample = MonitoringSample(model_id=model_id, model_version=model_version, period_start=period_start,
                              period_end=period_end, method=method, seed=seed, size_requested=size,
                              eligible=len(eligible), size_drawn=len(drawn), created_by=created_by,
                              created_at=now)
    s.add(sample)
    s.flush()
    s.add_all(SampleStudy(sample_pk=sample.id, study_pk=e.study_pk, task_pk=e.task_pk, position=i,
                          stratum=e.stratum, reader=names[i % len(names)], assigned_at=now)
              for i, e in enumerate(drawn))
    s.flush()
    return sample


def get_sample(s: Session, *, sample_id: int) -> MonitoringSample:
    """One sample; SampleNotFound if there is none."""
    sample = s.get(MonitoringSample, sample_id)
    if sample is None:
        raise SampleNotFound(f"no sample {sample_id}")
    return sample


def list_samples(s: Session, *, model_id: str | None = None, limit: int = 100) -> list[MonitoringSample]:
    """Samples, newest first."""
    q = select(MonitoringSample)
    if model_id is not None:
        q = q.where(MonitoringSample.model_id == model_id)
    return list(s.scalars(q.order_by(MonitoringSample.id.desc()).limit(limit)))


def assigned_studies(s: Session, *, reader: str) -> dict[str, list[int]]:
    """Study Instance UID → ids of the samples that assign the study to ``reader``.

    For the worklist's "monitoring sample" filter: a reader's studies to review.
    """
    rows = s.execute(select(Study.study_instance_uid, SampleStudy.sample_pk)
                     .join(Study, Study.id == SampleStudy.study_pk)
                     .where(SampleStudy.reader == reader)
                     .order_by(SampleStudy.sample_pk, SampleStudy.position))
    out: dict[str, list[int]] = {}
    for uid, sample_pk in rows:
        out.setdefault(uid, []).append(int(sample_pk))
    return out


@dataclass(frozen=True)
class SampledStudy:
    """One drawn study and where its review stands."""

    position: int
    study_instance_uid: str
    reader: str
    stratum: str
    task_id: int
    #: Whether the study has a signed report with labels of this model.
    reviewed: bool


@dataclass(frozen=True)
class FindingAgreement:
    """Agreement on the sample for one finding code."""

    code: str
    meaning: str
    agreement: Agreement


@dataclass(frozen=True)
class SampleReport:
    """A sample, its studies and the agreement measured on the reviewed ones."""

    sample: MonitoringSample
    studies: tuple[SampledStudy, ...]
    reviewed: int
    findings: tuple[FindingAgreement, ...]


def sample_report(s: Session, *, sample_id: int, level: float = 0.95) -> SampleReport:
    """The sample with its agreement so far (SampleNotFound if there is none)."""
    sample = get_sample(s, sample_id=sample_id)
    rows = s.execute(select(SampleStudy, Study.study_instance_uid)
                     .join(Study, Study.id == SampleStudy.study_pk)
                     .where(SampleStudy.sample_pk == sample.id).order_by(SampleStudy.position)).all()
    labels = signed_labels(s, model_id=sample.model_id)
    scores: dict[int, list[Score]] = {}
    for f in s.scalars(select(Finding).where(Finding.task_pk.in_([st.task_pk for st, _ in rows]))
                       .order_by(Finding.id)):
        scores.setdefault(f.task_pk, []).append(Score(f.id, code_key(f.code_scheme, f.code_value),
                                                      f.code_meaning, float(f.probability), bool(f.positive)))
    from radai.worklist.models import MISSED

    cases: dict[str, list[ReviewedCase]] = {}
    meanings: dict[str, str] = {}
    studies = []
    for st, uid in rows:
        entries = labels.get(uid)
        studies.append(SampledStudy(st.position, uid, st.reader, st.stratum, st.task_pk, entries is not None))
        for sc in scores.get(st.task_pk, []):
            meanings.setdefault(sc.code, sc.meaning)
            if entries is None:
                continue
            verdicts = {finding: verdict for finding, verdict, _ in entries if finding is not None}
            missed = any(f is None and v == MISSED and c == sc.code for f, v, c in entries)
            cases.setdefault(sc.code, []).append(
                ReviewedCase(sc.positive, verdicts.get(sc.finding_pk), missed))
    findings = tuple(FindingAgreement(code, meanings[code], agreement(count_outcomes(cases.get(code, [])),
                                                                      level=level))
                     for code in sorted(meanings))
    return SampleReport(sample=sample, studies=tuple(studies), reviewed=sum(1 for x in studies if x.reviewed),
                        findings=findings)
