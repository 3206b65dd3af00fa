"""``GET /api/v1/studies/{study_uid}/results``: the JSON summaries of a study's AI results."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from radai.auth.deps import Audit
from radai.results.schemas import StudyResultsOut
from radai.results.service import StudyNotFound, study_results
from radai.web.deps import RadaiDep

router = APIRouter(prefix="/api/v1", tags=["results"])


@router.get("/studies/{study_uid}/results", response_model=StudyResultsOut, response_model_by_alias=True)
def get_study_results(study_uid: str, radai: RadaiDep, audit: Audit) -> StudyResultsOut:
    """Every AI result of the study: pathology flag, confidence 0-100, conclusion, model,
    findings, timestamps, and the SR / SC / SEG objects stored for it (404: unknown study).
    """
    with radai.db.session() as session:
        try:
            results = study_results(session, study_instance_uid=study_uid)
        except StudyNotFound:
            raise HTTPException(404, "the study is not in the archive") from None
    audit.record(study_uid, action="results.read")
    return results
