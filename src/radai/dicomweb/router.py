"""The DICOMweb routes (PS3.18 §10.4 WADO-RS, §10.5 STOW-RS, §10.6 QIDO-RS).

Routes are thin: they read the path, headers and query, call the service modules and
frame the answer. They are all on one :data:`router`, mounted by
:func:`radai.app.build_web_app` behind one router-level access check; each route
writes the studies whose data it returns (or stores) to the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from radai.app import Radai
from radai.archive.query import Level
from radai.auth.deps import Audit, AuditTrail
from radai.dicomweb import qido, rendered, stow, wado
from radai.dicomweb.errors import BadRequest, NotAcceptable
from radai.dicomweb.media import (
    DICOM,
    DICOM_JSON,
    FrameRendition,
    MediaRange,
    accepts_json,
    negotiate_instances,
    negotiate_rendered,
    parse_accept,
)
from radai.dicomweb.multipart import MultipartReader, MultipartWriter, reading, stow_boundary
from radai.web.deps import RadaiDep

router = APIRouter(prefix="/dicom-web", tags=["DICOMweb"])


@dataclass(frozen=True)
class DicomWebContext:
    """What every DICOMweb route needs from its request."""

    radai: Radai
    request: Request
    #: Base URL of the service, for RetrieveURL and BulkDataURI values.
    url: str
    #: What the client accepts, most preferred first.
    ranges: list[MediaRange]
    audit: AuditTrail

    def record(self, study_uids: str | Iterable[str], action: str) -> None:
        """Write the studies this request returned or stored to the audit log."""
        self.audit.record(study_uids, action=action)


def dicomweb_context(request: Request, radai: RadaiDep, audit: Audit) -> DicomWebContext:
    """The request's context. The service URL is the configured public base URL when
    there is one, otherwise the URL this client used; the ``accept`` query parameter
    wins over the Accept header (PS3.18 §8.3.3.1)."""
    base = radai.settings.base_url or str(request.base_url)
    if "accept" in request.query_params:
        ranges = parse_accept(request.query_params.getlist("accept"))
    else:
        ranges = parse_accept(request.headers.getlist("accept"))
    return DicomWebContext(radai, request, base.rstrip("/") + "/dicom-web", ranges, audit)


Ctx = Annotated[DicomWebContext, Depends(dicomweb_context)]


def _json(content: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(content, separators=(",", ":")), status_code=status,
                    media_type=DICOM_JSON, headers=headers)


def _study_uids(items: Iterable[dict[str, Any]]) -> list[str]:
    """Study Instance UIDs named in DICOM JSON objects."""
    out = []
    for item in items:
        value = item.get("0020000D", {}).get("Value")
        if value:
            out.append(str(value[0]))
    return out


# --- STOW-RS -----------------------------------------------------------------------


async def _store(ctx: DicomWebContext, study: str | None) -> Response:
    boundary = stow_boundary(ctx.request.headers.get("content-type"))
    settings = ctx.radai.settings.dicomweb
    spool = ctx.radai.settings.data_dir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    reader = MultipartReader(boundary, memory_part_bytes=settings.stow_memory_part_bytes,
                             spool_dir=spool, max_bytes=settings.stow_max_request_bytes)
    with reading(reader):
        async for chunk in ctx.request.stream():
            reader.feed(chunk)
        parts = reader.finish()
        result = await run_in_threadpool(stow.store_parts, ctx.radai.archive, parts, study=study,
                                         service_url=ctx.url)
    await run_in_threadpool(ctx.record, result.studies, "dicomweb.stow")
    return _json(result.body, result.status)


@router.post("/studies", summary="Store Instances (STOW-RS)")
async def store_instances(ctx: Ctx) -> Response:
    """Store PS3.10 instances sent as ``multipart/related; type="application/dicom"``."""
    return await _store(ctx, None)


@router.post("/studies/{study}", summary="Store Instances of a study (STOW-RS)")
async def store_study_instances(study: str, ctx: Ctx) -> Response:
    """Store instances that must all belong to the study in the path."""
    return await _store(ctx, wado.check_uid(study, "Study Instance UID"))


# --- QIDO-RS -----------------------------------------------------------------------


def _search(ctx: DicomWebContext, scope: qido.Scope, action: str) -> Response:
    if not accepts_json(ctx.ranges):
        raise NotAcceptable(f"search results are sent as {DICOM_JSON} only")
    parsed = qido.parse_search(list(ctx.request.query_params.multi_items()), scope, service_url=ctx.url)
    settings = ctx.radai.settings.dicomweb
    with ctx.radai.db.session() as session:
        result = qido.search(session, parsed, storage=ctx.radai.storage, service_url=ctx.url,
                             max_results=settings.qido_max_results,
                             bulk_data_threshold=settings.bulk_data_threshold)
    headers = {"Warning": ", ".join(result.warnings)} if result.warnings else None
    if not result.items:
        return Response(status_code=204, headers=headers)  # PS3.18 §10.6.3: no matches
    ctx.record(_study_uids(result.items), action)
    return _json(result.items, 200, headers)


@router.get("/studies", summary="Search for Studies (QIDO-RS)")
def search_studies(ctx: Ctx) -> Response:
    """Studies matching the query parameters."""
    return _search(ctx, qido.Scope(Level.STUDY), "dicomweb.qido.studies")


@router.get("/series", summary="Search for Series (QIDO-RS)")
def search_series(ctx: Ctx) -> Response:
    """Series of any study matching the query parameters."""
    return _search(ctx, qido.Scope(Level.SERIES), "dicomweb.qido.series")


@router.get("/studies/{study}/series", summary="Search for Series of a study (QIDO-RS)")
def search_study_series(study: str, ctx: Ctx) -> Response:
    """Series of one study matching the query parameters."""
    scope = qido.Scope(Level.SERIES, wado.check_uid(study, "Study Instance UID"))
    return _search(ctx, scope, "dicomweb.qido.series")


@router.get("/instances", summary="Search for Instances (QIDO-RS)")
def search_instances(ctx: Ctx) -> Response:
    """Instances of any study matching the query parameters."""
    return _search(ctx, qido.Scope(Level.IMAGE), "dicomweb.qido.instances")


@router.get("/studies/{study}/instances", summary="Search for Instances of a study (QIDO-RS)")
def search_study_instances(study: str, ctx: Ctx) -> Response:
    """Instances of one study matching the query parameters."""
    scope = qido.Scope(Level.IMAGE, wado.check_uid(study, "Study Instance UID"))
    return _search(ctx, scope, "dicomweb.qido.instances")


@router.get("/studies/{study}/series/{series}/instances",
            summary="Search for Instances of a series (QIDO-RS)")
def search_series_instances(study: str, series: str, ctx: Ctx) -> Response:
    """Instances of one series matching the query parameters."""
    scope = qido.Scope(Level.IMAGE, wado.check_uid(study, "Study Instance UID"),
                       wado.check_uid(series, "Series Instance UID"))
    return _search(ctx, scope, "dicomweb.qido.instances")


# --- WADO-RS: instances and metadata -----------------------------------------------


def _locate(ctx: DicomWebContext, study: str, series: str | None = None,
            instance: str | None = None) -> list[wado.StoredInstance]:
    wado.check_uid(study, "Study Instance UID")
    if series is not None:
        wado.check_uid(series, "Series Instance UID")
    if instance is not None:
        wado.check_uid(instance, "SOP Instance UID")
    with ctx.radai.db.session() as session:
        return wado.find_instances(session, ctx.radai.storage, study=study, series=series,
                                   instance=instance)


def _retrieve(ctx: DicomWebContext, instances: list[wado.StoredInstance], *, single_allowed: bool
              ) -> Response:
    rendition = negotiate_instances(ctx.ranges, single_allowed=single_allowed)
    plan = wado.plan_instances(instances, rendition)
    ctx.record(instances[0].study_instance_uid, "dicomweb.wado.instances")
    if not rendition.multipart:
        inst = instances[0]
        if plan[0]:
            return Response(wado.transcode_to_explicit_little_endian(inst),
                            media_type=wado.instance_part_type(inst, True))
        return StreamingResponse(wado.read_file(inst.path), media_type=wado.instance_part_type(inst, False),
                                 headers={"Content-Length": str(inst.size)})
    writer = MultipartWriter(DICOM)
    return StreamingResponse(wado.stream_instances(instances, plan, writer, ctx.url),
                             media_type=writer.content_type)


@router.get("/studies/{study}", summary="Retrieve Study (WADO-RS)")
def retrieve_study(study: str, ctx: Ctx) -> Response:
    """Every instance of the study, as stored."""
    return _retrieve(ctx, _locate(ctx, study), single_allowed=False)


@router.get("/studies/{study}/series/{series}", summary="Retrieve Series (WADO-RS)")
def retrieve_series(study: str, series: str, ctx: Ctx) -> Response:
    """Every instance of the series, as stored."""
    return _retrieve(ctx, _locate(ctx, study, series), single_allowed=False)


@router.get("/studies/{study}/series/{series}/instances/{instance}", summary="Retrieve Instance (WADO-RS)")
def retrieve_instance(study: str, series: str, instance: str, ctx: Ctx) -> Response:
    """One instance, as stored."""
    return _retrieve(ctx, _locate(ctx, study, series, instance), single_allowed=True)


def _metadata(ctx: DicomWebContext, instances: list[wado.StoredInstance]) -> Response:
    if not accepts_json(ctx.ranges):
        raise NotAcceptable(f"metadata is sent as {DICOM_JSON} only")
    body = wado.metadata(instances, service_url=ctx.url,
                         threshold=ctx.radai.settings.dicomweb.bulk_data_threshold)
    ctx.record(instances[0].study_instance_uid, "dicomweb.wado.metadata")
    return _json(body)


@router.get("/studies/{study}/metadata", summary="Retrieve Study Metadata (WADO-RS)")
def study_metadata(study: str, ctx: Ctx) -> Response:
    """DICOM JSON of every instance of the study, bulk data by reference."""
    return _metadata(ctx, _locate(ctx, study))


@router.get("/studies/{study}/series/{series}/metadata", summary="Retrieve Series Metadata (WADO-RS)")
def series_metadata(study: str, series: str, ctx: Ctx) -> Response:
    """DICOM JSON of every instance of the series, bulk data by reference."""
    return _metadata(ctx, _locate(ctx, study, series))


@router.get("/studies/{study}/series/{series}/instances/{instance}/metadata",
            summary="Retrieve Instance Metadata (WADO-RS)")
def instance_metadata(study: str, series: str, instance: str, ctx: Ctx) -> Response:
    """DICOM JSON of one instance, bulk data by reference."""
    return _metadata(ctx, _locate(ctx, study, series, instance))


# --- WADO-RS: frames and bulk data --------------------------------------------------


def _parts(rendition: FrameRendition, parts: list[bytes]) -> Response:
    if not rendition.multipart:
        return Response(b"".join(parts), media_type=rendition.part_content_type)
    writer = MultipartWriter(rendition.media_type)
    return Response(b"".join(writer.whole(rendition.part_content_type, iter(parts))),
                    media_type=writer.content_type)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            summary="Retrieve Frames (WADO-RS)")
def retrieve_frames(study: str, series: str, instance: str, frames: str, ctx: Ctx) -> Response:
    """Frames (1-based list), native or in their stored compressed syntax."""
    inst = _locate(ctx, study, series, instance)[0]
    rendition, parts = wado.frames(inst, wado.parse_frame_list(frames), ctx.ranges)
    ctx.record(study, "dicomweb.wado.frames")
    return _parts(rendition, parts)


@router.get("/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path:path}",
            summary="Retrieve Bulk Data (WADO-RS)")
def retrieve_bulkdata(study: str, series: str, instance: str, path: str, ctx: Ctx) -> Response:
    """The value a BulkDataURI of the metadata names."""
    inst = _locate(ctx, study, series, instance)[0]
    rendition, parts = wado.bulkdata(inst, path, ctx.ranges)
    ctx.record(study, "dicomweb.wado.bulkdata")
    return _parts(rendition, parts)


# --- WADO-RS: rendered resources and thumbnails -------------------------------------


def _render_params(ctx: DicomWebContext, *, thumbnail: bool) -> tuple[rendered.RenderParams, list[str]]:
    q = ctx.request.query_params
    media_type = negotiate_rendered(ctx.ranges).media_type
    # Thumbnails take only viewport (PS3.18 §10.4.1.3); the origin server picks the rest.
    window = rendered.parse_window(q["window"]) if "window" in q and not thumbnail else None
    viewport: rendered.Viewport | None = None
    if "viewport" in q:
        viewport = rendered.parse_viewport(q["viewport"])
    elif thumbnail:
        size = ctx.radai.settings.dicomweb.thumbnail_size
        viewport = rendered.Viewport(size, size)
    quality = rendered.parse_quality(q["quality"]) if "quality" in q else rendered.DEFAULT_QUALITY
    notes = []
    if "annotation" in q:
        notes.append(f"299 {ctx.url}: The annotation parameter is not supported; "
                     "no annotations have been burned in.")
    return rendered.RenderParams(media_type, window, viewport, quality), notes


def _images(images: list[bytes], params: rendered.RenderParams, notes: list[str], *,
            multipart: bool) -> Response:
    headers = {"Warning": ", ".join(notes)} if notes else None
    if not multipart and len(images) == 1:
        return Response(images[0], media_type=params.media_type, headers=headers)
    writer = MultipartWriter(params.media_type)
    body = b"".join(writer.whole(params.media_type, iter(images)))
    return Response(body, media_type=writer.content_type, headers=headers)


def _rendered(ctx: DicomWebContext, instances: list[wado.StoredInstance], frames: str | None, *,
              whole: bool) -> Response:
    params, notes = _render_params(ctx, thumbnail=False)
    if whole:
        images = rendered.render_instances(instances, params)
    else:
        numbers = wado.parse_frame_list(frames) if frames is not None else [1]
        images = rendered.render_frames(instances[0], numbers, params)
    ctx.record(instances[0].study_instance_uid, "dicomweb.wado.rendered")
    return _images(images, params, notes, multipart=whole)


@router.get("/studies/{study}/rendered", summary="Retrieve Rendered Study (WADO-RS)")
def rendered_study(study: str, ctx: Ctx) -> Response:
    """The first frame of each image of the study, rendered (multipart)."""
    return _rendered(ctx, _locate(ctx, study), None, whole=True)


@router.get("/studies/{study}/series/{series}/rendered", summary="Retrieve Rendered Series (WADO-RS)")
def rendered_series(study: str, series: str, ctx: Ctx) -> Response:
    """The first frame of each image of the series, rendered (multipart)."""
    return _rendered(ctx, _locate(ctx, study, series), None, whole=True)


@router.get("/studies/{study}/series/{series}/instances/{instance}/rendered",
            summary="Retrieve Rendered Instance (WADO-RS)")
def rendered_instance(study: str, series: str, instance: str, ctx: Ctx) -> Response:
    """The instance's first frame, rendered."""
    return _rendered(ctx, _locate(ctx, study, series, instance), None, whole=False)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            summary="Retrieve Rendered Frames (WADO-RS)")
def rendered_frames(study: str, series: str, instance: str, frames: str, ctx: Ctx) -> Response:
    """The listed frames, rendered (one image, or multipart for several)."""
    return _rendered(ctx, _locate(ctx, study, series, instance), frames, whole=False)


def _thumbnail(ctx: DicomWebContext, inst: wado.StoredInstance, frame: int = 1) -> Response:
    params, notes = _render_params(ctx, thumbnail=True)
    images = rendered.render_frames(inst, [frame], params)
    ctx.record(inst.study_instance_uid, "dicomweb.wado.thumbnail")
    return _images(images, params, notes, multipart=False)


@router.get("/studies/{study}/thumbnail", summary="Retrieve Study Thumbnail (WADO-RS)")
def thumbnail_study(study: str, ctx: Ctx) -> Response:
    """A representative image of the study."""
    return _thumbnail(ctx, rendered.representative(_locate(ctx, study)))


@router.get("/studies/{study}/series/{series}/thumbnail", summary="Retrieve Series Thumbnail (WADO-RS)")
def thumbnail_series(study: str, series: str, ctx: Ctx) -> Response:
    """A representative image of the series."""
    return _thumbnail(ctx, rendered.representative(_locate(ctx, study, series)))


@router.get("/studies/{study}/series/{series}/instances/{instance}/thumbnail",
            summary="Retrieve Instance Thumbnail (WADO-RS)")
def thumbnail_instance(study: str, series: str, instance: str, ctx: Ctx) -> Response:
    """The instance's first frame, small."""
    return _thumbnail(ctx, _locate(ctx, study, series, instance)[0])


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail",
            summary="Retrieve Frame Thumbnail (WADO-RS)")
def thumbnail_frame(study: str, series: str, instance: str, frames: str, ctx: Ctx) -> Response:
    """One frame, small."""
    numbers = wado.parse_frame_list(frames)
    if len(numbers) != 1:
        raise BadRequest("a frame thumbnail is of one frame")
    return _thumbnail(ctx, _locate(ctx, study, series, instance)[0], numbers[0])
