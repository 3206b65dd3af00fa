"""JSON API of validation runs (mounted under ``/api/v1``).

Runs name studies only by their dataset keys and subgroup values, never by UIDs or
patient data; radai.app mounts the router for users who may read studies.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse

from radai.quality.schemas import RunDetailOut, RunOut, RunPage, StudyOut
from radai.quality.service import RunNotFound, get_run, list_runs
from radai.web.deps import RadaiDep

router = APIRouter(prefix="/api/v1", tags=["quality"])


@router.get("/validations", response_model=RunPage)
def get_validations(radai: RadaiDep,
                    model: Annotated[str | None, Query(description="Only runs of this model id.",
                                                       max_length=64)] = None,
                    dataset: Annotated[str | None, Query(description="Only runs on this dataset.",
                                                         max_length=64)] = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    offset: Annotated[int, Query(ge=0)] = 0) -> RunPage:
    """Validation runs, newest first: model, dataset version and manifest hash, AUC with CI, verdict."""
    with radai.db.session() as s:
        runs, total = list_runs(s, model_id=model, dataset=dataset, limit=limit, offset=offset)
        return RunPage(items=[RunOut.of(r) for r in runs], total=total, limit=limit, offset=offset)


@router.get("/validations/{run_id}", response_model=RunDetailOut)
def get_validation(run_id: int, radai: RadaiDep) -> RunDetailOut:
    """One run with its gate checks, technical defects and every study's scores (404: unknown)."""
    with radai.db.session() as s:
        try:
            run = get_run(s, run_id=run_id)
        except RunNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        return RunDetailOut(**RunOut.of(run).model_dump(), summary=json.loads(run.summary or "{}"),
                            studies=[StudyOut.of(row) for row in run.studies])


@router.get("/validations/{run_id}/report", response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {}}}})
def get_validation_report(run_id: int, radai: RadaiDep) -> HTMLResponse:
    """The run's stand-alone HTML report (404: unknown run, or a run without a report)."""
    with radai.db.session() as s:
        try:
            html = get_run(s, run_id=run_id).report_html
        except RunNotFound as exc:
            raise HTTPException(404, str(exc)) from None
    if not html:
        raise HTTPException(404, f"validation run {run_id} has no report")
    # The report is self-contained: nothing it may load, and no script.
    return HTMLResponse(html, headers={"Content-Security-Policy": "default-src 'none'; img-src data:; "
                                                                  "style-src 'unsafe-inline'"})
