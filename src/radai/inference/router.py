"""JSON API of tasks, findings and routing decisions (mounted under ``/api/v1``).

Routes are thin: they parse parameters, call radai.inference.service and record in the
audit log the studies whose data they return. Access control is added where the router
is mounted (radai.app).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, Response
from pydicom import dcmread

from radai.auth.deps import Audit
from radai.imaging import PixelError, model_frame
from radai.inference.heatmaps import load_heatmap, overlay_png, png_path
from radai.inference.models import TaskState
from radai.inference.schemas import StudyFindingsOut, StudyRoutingOut, TaskOut, TaskPage
from radai.inference.service import (
    FindingNotFound,
    StudyNotFound,
    TaskNotFound,
    heatmap_of,
    study_findings_view,
    study_routing_view,
    task_page,
    task_view,
)
from radai.models.registry import ModelNotFound
from radai.web.deps import RadaiDep

router = APIRouter(prefix="/api/v1", tags=["inference"])

_NOT_ARCHIVED = "the study is not in the archive"


@router.get("/studies/{study_uid}/findings", response_model=StudyFindingsOut)
def get_study_findings(study_uid: str, radai: RadaiDep, audit: Audit) -> StudyFindingsOut:
    """Every AI finding of a study, oldest task first (404: unknown study)."""
    with radai.db.session() as s:
        try:
            out = study_findings_view(s, study_instance_uid=study_uid)
        except StudyNotFound:
            raise HTTPException(404, _NOT_ARCHIVED) from None
    audit.record(study_uid, action="findings.read")
    return out


@router.get("/studies/{study_uid}/routing", response_model=StudyRoutingOut)
def get_study_routing(study_uid: str, radai: RadaiDep, audit: Audit) -> StudyRoutingOut:
    """The routing decisions of a study (one per change, routed or not, with the reason)
    and its tasks (404: unknown study)."""
    with radai.db.session() as s:
        try:
            out = study_routing_view(s, study_instance_uid=study_uid)
        except StudyNotFound:
            raise HTTPException(404, _NOT_ARCHIVED) from None
    audit.record(study_uid, action="routing.read")
    return out


@router.get("/tasks", response_model=TaskPage)
def get_tasks(radai: RadaiDep, audit: Audit,
              state: Annotated[TaskState | None, Query(description="Only tasks in this state.")] = None,
              model: Annotated[str | None, Query(description="ID or ID@VERSION.", max_length=97)] = None,
              study: Annotated[str | None, Query(description="Study Instance UID.", max_length=64)] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0)] = 0) -> TaskPage:
    """Inference tasks, newest first, filtered by state, model and study; paged."""
    model_id, _, version = (model or "").partition("@")
    with radai.db.session() as s:
        page = task_page(s, state=state, model_id=model_id or None, model_version=version or None,
                         study_instance_uid=study, limit=limit, offset=offset)
    audit.record(sorted({t.study_instance_uid for t in page.items}), action="tasks.read")
    return page


@router.get("/tasks/{task_id}", response_model=TaskOut)
def get_task(task_id: int, radai: RadaiDep, audit: Audit) -> TaskOut:
    """One inference task: state, attempts, lease, defect, batch and timings (404: unknown)."""
    with radai.db.session() as s:
        try:
            task = task_view(s, task_id=task_id)
        except TaskNotFound:
            raise HTTPException(404, f"no task {task_id}") from None
    audit.record(task.study_instance_uid, action="tasks.read")
    return task


@router.get("/findings/{finding_id}/heatmap.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def get_heatmap(finding_id: int, radai: RadaiDep, audit: Audit,
                view: Annotated[Literal["heatmap", "overlay"], Query(
                    description="heatmap: the 8-bit grayscale map over the model input; overlay: "
                                "the source image with the map blended in, as in the AI secondary "
                                "captures.")] = "heatmap",
                size: Annotated[int, Query(ge=32, le=2048,
                                           description="overlay: the longest side in pixels.")] = 512,
                ) -> Response:
    """The heatmap of a positive finding, alone or over its source image (404: none)."""
    with radai.db.session() as s:
        try:
            ref = heatmap_of(s, finding_id=finding_id)
        except FindingNotFound:
            raise HTTPException(404, f"finding {finding_id} has no heatmap") from None
    path = radai.settings.data_dir / ref.heatmap_path
    if not path.is_file():
        raise HTTPException(404, f"the heatmap of finding {finding_id} is missing")
    if view == "heatmap":
        audit.record(ref.study_instance_uid, action="findings.heatmap")
        return FileResponse(png_path(path), media_type="image/png")
    source = radai.archive.instance_path(ref.sop_instance_uid) if ref.sop_instance_uid else None
    if source is None:
        raise HTTPException(404, f"the source image of finding {finding_id} is not in the archive")
    try:
        rule = radai.models.get(ref.model_id, ref.model_version).manifest.input.frames
    except ModelNotFound:
        rule = "first"
    try:
        ds = dcmread(source)
        picture = overlay_png(ds, frame=model_frame(ds, rule), heat=load_heatmap(radai.settings.data_dir,
                                                                                 ref.heatmap_path),
                              max_side=size, opacity=radai.settings.results.heatmap_opacity)
    except PixelError:
        raise HTTPException(422, f"the source image of finding {finding_id} cannot be decoded") from None
    audit.record(ref.study_instance_uid, action="findings.heatmap")
    return Response(picture, media_type="image/png")
