"""JSON API of datasets (mounted under ``/api/v1``).

Reading is for users who may read studies (a version's manifest names its studies, so
those reads are audited with the studies' UIDs); creating and freezing need
``manage_models`` as well (radai.app mounts the router so). Routes are thin: they call
radai.datasets.service.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from radai.archive.models import Study
from radai.auth.deps import Audit, CurrentUser
from radai.datasets.manifest import load_manifest
from radai.datasets.models import Dataset, DatasetStudy, DatasetVersion
from radai.datasets.schemas import DatasetIn, DatasetOut, DraftStudyOut, VersionOut, VersionSummaryOut
from radai.datasets.service import (
    DatasetError,
    DatasetExists,
    DatasetNotFound,
    create_dataset,
    draft_of,
    freeze,
    get_dataset,
    get_version,
    list_datasets,
)
from radai.web.deps import RadaiDep

router = APIRouter(prefix="/api/v1", tags=["datasets"])


def _counts(session: Session, versions: list[DatasetVersion]) -> dict[int, int]:
    ids = [v.id for v in versions]
    if not ids:
        return {}
    rows = session.execute(select(DatasetStudy.version_pk, func.count())
                           .where(DatasetStudy.version_pk.in_(ids)).group_by(DatasetStudy.version_pk))
    return {pk: int(n) for pk, n in rows}


def _dataset_out(session: Session, dataset: Dataset) -> DatasetOut:
    return DatasetOut.of(dataset, counts=_counts(session, list(dataset.versions)))


def _version_out(session: Session, version: DatasetVersion) -> tuple[VersionOut, list[str]]:
    """The API view of a version and the Study Instance UIDs it names."""
    summary = VersionSummaryOut.of(version, n_studies=_counts(session, [version]).get(version.id, 0))
    if version.frozen:
        manifest = load_manifest(version)
        uids = [str(s["study_instance_uid"]) for s in manifest["studies"]]
        out = VersionOut(**summary.model_dump(), dataset=version.dataset.name, card=manifest["card"],
                         manifest=manifest)
        return out, uids
    entries = list(session.scalars(select(DatasetStudy).where(DatasetStudy.version_pk == version.id)
                                   .order_by(DatasetStudy.key)))
    study_uids = dict(session.execute(select(Study.id, Study.study_instance_uid)
                                      .where(Study.id.in_([e.study_pk for e in entries]))).all())
    card: dict[str, Any] = {"name": version.dataset.name, "version": version.number,
                            "description": version.dataset.description, "purpose": version.purpose,
                            "source": version.source, "inclusion_criteria": version.inclusion_criteria,
                            "label_method": version.label_method,
                            "label_verification": version.label_verification}
    studies = [DraftStudyOut.of(e, study_uid=study_uids[e.study_pk]) for e in entries]
    out = VersionOut(**summary.model_dump(), dataset=version.dataset.name, card=card, manifest=None,
                     studies=studies)
    return out, [s.study_instance_uid for s in studies]


@router.get("/datasets", response_model=list[DatasetOut])
def get_datasets(radai: RadaiDep) -> list[DatasetOut]:
    """Every dataset with its versions (state, study count, manifest hash)."""
    with radai.db.session() as s:
        return [_dataset_out(s, d) for d in list_datasets(s)]


@router.get("/datasets/{name}", response_model=DatasetOut)
def get_one_dataset(name: str, radai: RadaiDep) -> DatasetOut:
    """One dataset and its versions (404: unknown)."""
    with radai.db.session() as s:
        try:
            return _dataset_out(s, get_dataset(s, name=name))
        except DatasetNotFound as exc:
            raise HTTPException(404, str(exc)) from None


@router.get("/datasets/{name}/versions/{number}", response_model=VersionOut)
def get_dataset_version(name: str, number: int, radai: RadaiDep, audit: Audit) -> VersionOut:
    """A version's dataset card and manifest (frozen) or its studies and labels so far (draft)."""
    with radai.db.session() as s:
        try:
            out, uids = _version_out(s, get_version(s, name=name, number=number))
        except DatasetNotFound as exc:
            raise HTTPException(404, str(exc)) from None
    audit.record(uids, action="datasets.read")
    return out


@router.post("/datasets", response_model=DatasetOut, status_code=201)
def post_dataset(body: DatasetIn, radai: RadaiDep, user: CurrentUser) -> DatasetOut:
    """Create a dataset with a draft version 1 (409: the name is taken; 422: invalid name)."""
    card = body.model_dump(exclude={"name", "description"}, exclude_none=True)
    try:
        with radai.db.transaction() as s:
            create_dataset(s, name=body.name, actor=user.username, description=body.description, card=card)
    except DatasetError as exc:
        raise HTTPException(409 if isinstance(exc, DatasetExists) else 422, str(exc)) from None
    with radai.db.session() as s:
        return _dataset_out(s, get_dataset(s, name=body.name))


@router.post("/datasets/{name}/versions/{number}/freeze", response_model=VersionOut)
def post_freeze(name: str, number: int, radai: RadaiDep, user: CurrentUser, audit: Audit) -> VersionOut:
    """Freeze a draft version (409: already frozen, or not ready — the message says what is missing)."""
    try:
        with radai.db.transaction() as s:
            freeze(s, version=draft_of(s, name=name, number=number), storage=radai.storage,
                   actor=user.username)
    except DatasetNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except DatasetError as exc:
        raise HTTPException(409, str(exc)) from None
    with radai.db.session() as s:
        out, uids = _version_out(s, get_version(s, name=name, number=number))
    audit.record(uids, action="datasets.freeze")
    return out
