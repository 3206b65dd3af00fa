"""Routes of the vendor view: de-identified DICOMweb (``/vendor/dicom-web``) and the grants API.

The DICOMweb routes mirror the PS3.18 resources a model vendor needs — QIDO-RS
searches (§10.6), WADO-RS instances, metadata, frames and bulk data (§10.4) — addressed
by pseudonymous UIDs. They reuse the clinical DICOMweb service (:mod:`radai.dicomweb`)
for matching, locating, media negotiation and multipart framing, and send only what
:class:`radai.vendor.view.VendorView` has de-identified. Only studies granted to the
account are visible; every request is written to the audit log with the original Study
Instance UIDs (action ``vendor.*``), refusals included.

Without a de-identification key (``deid.key_file`` or ``deid.key``) the view is off and
answers 503 naming the setting.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydicom.uid import ExplicitVRBigEndian
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from radai.app import Radai
from radai.archive.models import Patient, Study
from radai.archive.query import ATTRIBUTES, Level, Match
from radai.auth.audit import Outcome
from radai.auth.deps import Audit, AuditTrail, CurrentUser
from radai.auth.service import Principal
from radai.dicomweb import qido, wado
from radai.dicomweb.dicomjson import (
    BINARY_VRS,
    PIXEL_DATA,
    dataset_json,
    find_element,
    to_little_endian,
)
from radai.dicomweb.errors import BadRequest, DicomWebError, NotAcceptable, NotFound
from radai.dicomweb.media import (
    DICOM,
    DICOM_JSON,
    NATIVE,
    OCTET_STREAM,
    FrameRendition,
    MediaRange,
    accepts_json,
    negotiate_frames,
    negotiate_instances,
    parse_accept,
)
from radai.dicomweb.multipart import MultipartWriter
from radai.vendor import service
from radai.vendor.schemas import GrantIn, GrantOut
from radai.vendor.service import Level as MapLevel
from radai.vendor.service import NotGranted, PseudonymMap, UnknownPseudonym
from radai.vendor.view import (
    PIXEL_TAGS,
    VendorView,
    Withheld,
    identity_dataset,
    identity_keywords,
)
from radai.web.deps import RadaiDep

if TYPE_CHECKING:
    from fastapi import FastAPI

    from radai.config import Settings

router = APIRouter(prefix="/vendor/dicom-web", tags=["vendor DICOMweb (de-identified)"])
admin = APIRouter(prefix="/api/v1/vendor", tags=["vendor access"])

#: Where :func:`prepare` leaves the view on the app.
_STATE = "radai_vendor_view"
NO_KEY = ("the de-identified vendor view is off: no de-identification key is configured; set "
          "deid.key_file or deid.key (RADAI_DEID__KEY_FILE / RADAI_DEID__KEY)")
_UID_LEVELS: dict[str, MapLevel] = {"StudyInstanceUID": "study", "SeriesInstanceUID": "series",
                                    "SOPInstanceUID": "instance"}
_ISSUED_KEYS: tuple[tuple[str, MapLevel], ...] = (("0020000D", "study"), ("0020000E", "series"),
                                                  ("00080018", "instance"))


def prepare(app: FastAPI, settings: Settings) -> None:
    """Load the view's key and profile for ``app``.

    Raises :class:`radai.config.ConfigError` when a key is configured but unusable; with
    no key configured the vendor routes answer 503.
    """
    setattr(app.state, _STATE, VendorView.from_settings(settings))


class Forbidden(DicomWebError):
    """403: the object is withheld from the de-identified view."""

    status = 403


class _NotGrantedError(NotFound):
    """404 to the vendor (a study it may not see does not exist for it); denied in the audit log."""


@dataclass
class VendorContext:
    """What every vendor DICOMweb route needs from its request."""

    radai: Radai
    request: Request
    user: Principal
    view: VendorView
    pseudonyms: PseudonymMap
    #: Base URL of the vendor service, for RetrieveURL, Content-Location and BulkDataURI.
    url: str
    ranges: list[MediaRange]
    audit: AuditTrail
    #: Original Study Instance UIDs this request has touched, for the audit log.
    studies: list[str] = field(default_factory=list)

    def run(self, action: str, answer: Callable[[], Response]) -> Response:
        """Answer the request and write its audit rows (``vendor.*``), refusals included."""
        try:
            return answer()
        except _NotGrantedError as exc:
            self.audit.record(self.studies or None, action=action, outcome=Outcome.DENIED,
                              status=exc.status_code)
            raise
        except Forbidden as exc:
            self.audit.record(self.studies or None, action=action, outcome=Outcome.DENIED,
                              status=exc.status_code)
            raise
        except StarletteHTTPException as exc:
            self.audit.record(self.studies or None, action=action, status=exc.status_code)
            raise

    def study(self, pseudonym: str) -> str:
        """The original study a pseudonym names, if the account may see it; 404 otherwise."""
        wado.check_uid(pseudonym, "Study Instance UID")
        try:
            original = self.pseudonyms.resolve_study(pseudonym, user_id=self.user.user_id)
        except NotGranted as exc:
            self.studies.append(exc.study_uid)
            raise _NotGrantedError("no such study in the archive") from None
        except UnknownPseudonym:
            raise NotFound("no such study in the archive") from None
        self.studies.append(original)
        return original

    def series(self, pseudonym: str, study: str) -> str:
        """The original series a pseudonym names within ``study``; 404 otherwise."""
        wado.check_uid(pseudonym, "Series Instance UID")
        try:
            return self.pseudonyms.resolve_series(pseudonym, study_uid=study)
        except UnknownPseudonym:
            raise NotFound("no such series in the archive") from None

    def instance(self, pseudonym: str, series: str) -> str:
        """The original instance a pseudonym names within ``series``; 404 otherwise."""
        wado.check_uid(pseudonym, "SOP Instance UID")
        try:
            return self.pseudonyms.resolve_instance(pseudonym, series_uid=series)
        except UnknownPseudonym:
            raise NotFound("no such instance in the archive") from None

    def locate(self, study_p: str, series_p: str | None = None,
               instance_p: str | None = None) -> list[wado.StoredInstance]:
        """The stored instances named by pseudonymous UIDs."""
        study = self.study(study_p)
        series = self.series(series_p, study) if series_p is not None else None
        instance = (self.instance(instance_p, series)
                    if instance_p is not None and series is not None else None)
        with self.radai.db.session() as session:
            return wado.find_instances(session, self.radai.storage, study=study, series=series,
                                       instance=instance)

    def instance_url(self, inst: wado.StoredInstance) -> str:
        """The instance's WADO-RS URL in the vendor view (pseudonymous UIDs)."""
        p = self.pseudonyms.pseudonym
        return (f"{self.url}/studies/{p(inst.study_instance_uid)}/series/{p(inst.series_instance_uid)}"
                f"/instances/{p(inst.sop_instance_uid)}")

    def issued(self, instances: Sequence[wado.StoredInstance]) -> None:
        """Record the pseudonyms of the instances sent (so that they resolve later)."""
        uids: list[tuple[str, MapLevel]] = []
        for inst in instances:
            uids += [(inst.study_instance_uid, "study"), (inst.series_instance_uid, "series"),
                     (inst.sop_instance_uid, "instance")]
        self.pseudonyms.remember(uids)


def vendor_context(request: Request, radai: RadaiDep, audit: Audit, user: CurrentUser) -> VendorContext:
    """The request's context; 503 when the view has no key."""
    view: VendorView | None = getattr(request.app.state, _STATE, None)
    if view is None:
        raise HTTPException(503, NO_KEY)
    base = radai.settings.base_url or str(request.base_url)
    if "accept" in request.query_params:
        ranges = parse_accept(request.query_params.getlist("accept"))
    else:
        ranges = parse_accept(request.headers.getlist("accept"))
    return VendorContext(radai=radai, request=request, user=user, view=view,
                         pseudonyms=PseudonymMap(db=radai.db, key=view.key),
                         url=base.rstrip("/") + "/vendor/dicom-web", ranges=ranges, audit=audit)


Ctx = Annotated[VendorContext, Depends(vendor_context)]


def _json(content: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(content, separators=(",", ":")), status_code=status,
                    media_type=DICOM_JSON, headers=headers)


def _withheld_note(ctx: VendorContext, count: int) -> str:
    return (f"299 {ctx.url}: {count} instance(s) withheld from the de-identified view: they may "
            "carry burned-in text that header de-identification cannot remove")


def _first_value(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key, {}).get("Value")
    return str(value[0]) if value else None


# --- QIDO-RS -------------------------------------------------------------------------------


def _vendor_matches(ctx: VendorContext, matches: list[Match], granted: list[str]) -> list[Match] | None:
    """The matching keys with pseudonymous UIDs mapped to the originals; None when a UID key
    names no issued pseudonym (nothing can match)."""
    out = []
    for m in matches:
        value = m.value.strip("\0 ")
        if value in ("", "*"):
            out.append(m)
            continue
        level = _UID_LEVELS.get(m.keyword)
        if level is not None:
            wanted = [u.strip() for u in value.split("\\") if u.strip()]
            found = ctx.pseudonyms.lookup(wanted, level)
            if level == "study" and len(found) < len(wanted):
                # Pseudonyms of granted studies resolve even before the view has issued them.
                ctx.pseudonyms.remember((uid, "study") for uid in granted)
                found = ctx.pseudonyms.lookup(wanted, level)
            if not found:
                return None
            out.append(Match(m.keyword, "\\".join(found[p] for p in wanted if p in found)))
        elif ctx.view.shows_unchanged(m.keyword):
            out.append(m)
        else:
            raise BadRequest(f"{m.keyword} cannot be a matching key in the de-identified view: the view "
                             "does not show its stored value")
    return out


def _identities(ctx: VendorContext, study_uids: set[str]) -> dict[str, Any]:
    """Study UID → dataset of the patient's and study's identifying index attributes."""
    keywords = identity_keywords()
    out = {}
    with ctx.radai.db.session() as session:
        rows = session.execute(select(Study, Patient).join(Patient, Study.patient_pk == Patient.id)
                               .where(Study.study_instance_uid.in_(sorted(study_uids)))).all()
        for study, patient in rows:
            values = []
            for keyword in keywords:
                attr = ATTRIBUTES[keyword]
                assert attr.column is not None
                obj = patient if attr.level == Level.PATIENT else study
                values.append((keyword, getattr(obj, attr.column.key)))
            out[study.study_instance_uid] = identity_dataset(values)
    return out


def _search(ctx: VendorContext, level: Level, action: str, study_p: str | None = None,
            series_p: str | None = None) -> Response:
    def answer() -> Response:
        if not accepts_json(ctx.ranges):
            raise NotAcceptable(f"search results are sent as {DICOM_JSON} only")
        study = ctx.study(study_p) if study_p is not None else None
        series = ctx.series(series_p, study) if series_p is not None and study is not None else None
        parsed = qido.parse_search(list(ctx.request.query_params.multi_items()), qido.Scope(level),
                                   service_url=ctx.url)
        with ctx.radai.db.session() as session:
            granted = service.granted_studies(session, user_id=ctx.user.user_id)
        matches = _vendor_matches(ctx, parsed.matches, granted) if granted else None
        if matches is None:
            ctx.audit.record(None, action=action, status=204)
            return Response(status_code=204)
        matches.append(Match("StudyInstanceUID", "\\".join(granted)))
        request = dataclasses.replace(parsed, scope=qido.Scope(level, study, series), matches=matches)
        settings = ctx.radai.settings.dicomweb
        with ctx.radai.db.session() as session:
            result = qido.search(session, request, storage=ctx.radai.storage, service_url=ctx.url,
                                 max_results=settings.qido_max_results,
                                 bulk_data_threshold=settings.bulk_data_threshold)
        headers = {"Warning": ", ".join(result.warnings)} if result.warnings else None
        if not result.items:
            ctx.audit.record(None, action=action, status=204)
            return Response(status_code=204, headers=headers)
        originals = [_first_value(item, "0020000D") or "" for item in result.items]
        identities = _identities(ctx, set(originals))
        items: list[dict[str, Any]] = []
        issued: list[tuple[str, MapLevel]] = []
        for item, study_uid in zip(result.items, originals, strict=True):
            items.append(ctx.view.search_item(item, identities.get(study_uid, identity_dataset([])),
                                              level=level, service_url=ctx.url,
                                              threshold=settings.bulk_data_threshold))
            for key, map_level in _ISSUED_KEYS:
                uid = _first_value(item, key)
                if uid:
                    issued.append((uid, map_level))
        ctx.pseudonyms.remember(issued)
        ctx.audit.record(sorted(set(originals)), action=action)
        return _json(items, 200, headers)

    return ctx.run(action, answer)


@router.get("/studies", summary="Search for Studies, de-identified (QIDO-RS)")
def search_studies(ctx: Ctx) -> Response:
    """Granted studies matching the query parameters."""
    return _search(ctx, Level.STUDY, "vendor.qido.studies")


@router.get("/series", summary="Search for Series, de-identified (QIDO-RS)")
def search_series(ctx: Ctx) -> Response:
    """Series of granted studies matching the query parameters."""
    return _search(ctx, Level.SERIES, "vendor.qido.series")


@router.get("/studies/{study_pseudonym}/series", summary="Search for Series of a study, de-identified")
def search_study_series(study_pseudonym: str, ctx: Ctx) -> Response:
    """Series of one granted study."""
    return _search(ctx, Level.SERIES, "vendor.qido.series", study_pseudonym)


@router.get("/instances", summary="Search for Instances, de-identified (QIDO-RS)")
def search_instances(ctx: Ctx) -> Response:
    """Instances of granted studies matching the query parameters."""
    return _search(ctx, Level.IMAGE, "vendor.qido.instances")


@router.get("/studies/{study_pseudonym}/instances", summary="Search for Instances of a study, de-identified")
def search_study_instances(study_pseudonym: str, ctx: Ctx) -> Response:
    """Instances of one granted study."""
    return _search(ctx, Level.IMAGE, "vendor.qido.instances", study_pseudonym)


@router.get("/studies/{study_pseudonym}/series/{series_pseudonym}/instances",
            summary="Search for Instances of a series, de-identified")
def search_series_instances(study_pseudonym: str, series_pseudonym: str, ctx: Ctx) -> Response:
    """Instances of one series of a granted study."""
    return _search(ctx, Level.IMAGE, "vendor.qido.instances", study_pseudonym, series_pseudonym)


# --- WADO-RS: instances and metadata ---------------------------------------------------------


def _sendable(ctx: VendorContext, instances: list[wado.StoredInstance]
              ) -> tuple[list[wado.StoredInstance], list[str]]:
    """The instances the view may send, and the reasons the others are withheld."""
    sendable, reasons = [], []
    for inst in instances:
        try:
            ctx.view.check(inst)
        except Withheld as exc:
            reasons.append(exc.reason)
            continue
        sendable.append(inst)
    if not sendable:
        raise Forbidden(f"withheld from the de-identified view: {reasons[0]}; such objects may carry "
                        "burned-in patient details that header de-identification cannot remove")
    return sendable, reasons


def _retrieve(ctx: VendorContext, locate: Callable[[], list[wado.StoredInstance]], *,
              single_allowed: bool) -> Response:
    def answer() -> Response:
        instances = locate()
        rendition = negotiate_instances(ctx.ranges, single_allowed=single_allowed)
        plan = wado.plan_instances(instances, rendition)
        if any(native and inst.transfer_syntax_uid == str(ExplicitVRBigEndian)
               for inst, native in zip(instances, plan, strict=True)):
            raise NotAcceptable("big endian instances are sent in their stored transfer syntax "
                                f"{ExplicitVRBigEndian} only")
        native_of = {inst.sop_instance_uid: native for inst, native in zip(instances, plan, strict=True)}
        sendable, withheld = _sendable(ctx, instances)
        ctx.issued(sendable)
        ctx.audit.record(ctx.studies, action="vendor.wado.instances")
        if not rendition.multipart:
            inst = sendable[0]
            native = native_of[inst.sop_instance_uid]
            return Response(_instance_bytes(ctx, inst, native),
                            media_type=wado.instance_part_type(inst, native))
        writer = MultipartWriter(DICOM)
        headers = {"Warning": _withheld_note(ctx, len(withheld))} if withheld else None

        def parts() -> Iterator[bytes]:
            for inst in sendable:
                native = native_of[inst.sop_instance_uid]
                yield writer.part(wado.instance_part_type(inst, native), _instance_bytes(ctx, inst, native),
                                  location=ctx.instance_url(inst))
            yield writer.end()

        # 206: some of the target resources are not in the payload (PS3.18 §8.5, Warning says why).
        return StreamingResponse(parts(), status_code=206 if withheld else 200,
                                 media_type=writer.content_type, headers=headers)

    return ctx.run("vendor.wado.instances", answer)


def _instance_bytes(ctx: VendorContext, inst: wado.StoredInstance, native: bool) -> bytes:
    try:
        return ctx.view.instance(inst, native=native)
    except Withheld as exc:  # the file changed since it was checked
        raise Forbidden(f"withheld from the de-identified view: {exc.reason}") from None
    except (ValueError, RuntimeError, NotImplementedError):
        raise NotAcceptable("the stored pixel data cannot be decoded; ask for the instance in its stored "
                            f"transfer syntax {inst.transfer_syntax_uid}") from None


@router.get("/studies/{study_pseudonym}", summary="Retrieve Study, de-identified (WADO-RS)")
def retrieve_study(study_pseudonym: str, ctx: Ctx) -> Response:
    """Every sendable instance of a granted study, de-identified."""
    return _retrieve(ctx, lambda: ctx.locate(study_pseudonym), single_allowed=False)


@router.get("/studies/{study_pseudonym}/series/{series_pseudonym}",
            summary="Retrieve Series, de-identified (WADO-RS)")
def retrieve_series(study_pseudonym: str, series_pseudonym: str, ctx: Ctx) -> Response:
    """Every sendable instance of a series, de-identified."""
    return _retrieve(ctx, lambda: ctx.locate(study_pseudonym, series_pseudonym), single_allowed=False)


@router.get("/studies/{study_pseudonym}/series/{series_pseudonym}/instances/{instance_pseudonym}",
            summary="Retrieve Instance, de-identified (WADO-RS)")
def retrieve_instance(study_pseudonym: str, series_pseudonym: str, instance_pseudonym: str,
                      ctx: Ctx) -> Response:
    """One instance, de-identified, its pixel data as stored."""
    return _retrieve(ctx, lambda: ctx.locate(study_pseudonym, series_pseudonym, instance_pseudonym),
                     single_allowed=True)


def _bulk_uri(instance_url: str) -> Callable[[str], str]:
    def uri(path: str) -> str:
        return f"{instance_url}/bulkdata/{path}"

    return uri


def _metadata(ctx: VendorContext, locate: Callable[[], list[wado.StoredInstance]]) -> Response:
    def answer() -> Response:
        if not accepts_json(ctx.ranges):
            raise NotAcceptable(f"metadata is sent as {DICOM_JSON} only")
        instances = locate()
        threshold = ctx.radai.settings.dicomweb.bulk_data_threshold
        body, withheld = [], []
        for inst in instances:
            try:
                header, pixels = ctx.view.header(inst)
            except Withheld as exc:
                withheld.append(exc.reason)
                continue
            url = ctx.instance_url(inst)
            item = dataset_json(header, bulk_uri=_bulk_uri(url), threshold=threshold,
                                little_endian=inst.transfer_syntax_uid != str(ExplicitVRBigEndian))
            for tag, vr in pixels.items():
                item[f"{tag:08X}"] = {"vr": vr, "BulkDataURI": f"{url}/bulkdata/{tag:08X}"}
            item["00083002"] = {"vr": "UI", "Value": [inst.transfer_syntax_uid]}
            body.append(dict(sorted(item.items())))
        if not body:
            raise Forbidden(f"withheld from the de-identified view: {withheld[0]}; such objects may carry "
                            "burned-in patient details that header de-identification cannot remove")
        ctx.issued(instances)
        ctx.audit.record(ctx.studies, action="vendor.wado.metadata")
        if withheld:
            return _json(body, 206, {"Warning": _withheld_note(ctx, len(withheld))})
        return _json(body)

    return ctx.run("vendor.wado.metadata", answer)


@router.get("/studies/{study_pseudonym}/metadata", summary="Retrieve Study Metadata, de-identified")
def study_metadata(study_pseudonym: str, ctx: Ctx) -> Response:
    """De-identified DICOM JSON of every sendable instance of a granted study."""
    return _metadata(ctx, lambda: ctx.locate(study_pseudonym))


@router.get("/studies/{study_pseudonym}/series/{series_pseudonym}/metadata",
            summary="Retrieve Series Metadata, de-identified")
def series_metadata(study_pseudonym: str, series_pseudonym: str, ctx: Ctx) -> Response:
    """De-identified DICOM JSON of every sendable instance of a series."""
    return _metadata(ctx, lambda: ctx.locate(study_pseudonym, series_pseudonym))


@router.get("/studies/{study_pseudonym}/series/{series_pseudonym}/instances/{instance_pseudonym}/metadata",
            summary="Retrieve Instance Metadata, de-identified")
def instance_metadata(study_pseudonym: str, series_pseudonym: str, instance_pseudonym: str,
                      ctx: Ctx) -> Response:
    """De-identified DICOM JSON of one instance."""
    return _metadata(ctx, lambda: ctx.locate(study_pseudonym, series_pseudonym, instance_pseudonym))


# --- WADO-RS: frames and bulk data -----------------------------------------------------------


def _parts(rendition: FrameRendition, parts: list[bytes]) -> Response:
    if not rendition.multipart:
        return Response(b"".join(parts), media_type=rendition.part_content_type)
    writer = MultipartWriter(rendition.media_type)
    return Response(b"".join(writer.whole(rendition.part_content_type, iter(parts))),
                    media_type=writer.content_type)


def _one(ctx: VendorContext, study_p: str, series_p: str, instance_p: str) -> wado.StoredInstance:
    inst = ctx.locate(study_p, series_p, instance_p)[0]
    try:
        ctx.view.check(inst)
    except Withheld as exc:
        raise Forbidden(f"withheld from the de-identified view: {exc.reason}; such objects may carry "
                        "burned-in patient details that header de-identification cannot remove") from None
    return inst


@router.get("/studies/{study_pseudonym}/series/{series_pseudonym}/instances/{instance_pseudonym}"
            "/frames/{frames}", summary="Retrieve Frames, de-identified instance (WADO-RS)")
def retrieve_frames(study_pseudonym: str, series_pseudonym: str, instance_pseudonym: str, frames: str,
                    ctx: Ctx) -> Response:
    """Frames (1-based list) of a sendable instance: pixel data only, as stored or native."""
    def answer() -> Response:
        inst = _one(ctx, study_pseudonym, series_pseudonym, instance_pseudonym)
        rendition, parts = wado.frames(inst, wado.parse_frame_list(frames), ctx.ranges)
        ctx.audit.record(ctx.studies, action="vendor.wado.frames")
        return _parts(rendition, parts)

    return ctx.run("vendor.wado.frames", answer)


@router.get("/studies/{study_pseudonym}/series/{series_pseudonym}/instances/{instance_pseudonym}"
            "/bulkdata/{path:path}", summary="Retrieve Bulk Data, de-identified instance (WADO-RS)")
def retrieve_bulkdata(study_pseudonym: str, series_pseudonym: str, instance_pseudonym: str, path: str,
                      ctx: Ctx) -> Response:
    """The value a BulkDataURI of the de-identified metadata names."""
    def answer() -> Response:
        inst = _one(ctx, study_pseudonym, series_pseudonym, instance_pseudonym)
        if path.upper() in {f"{t:08X}" for t in PIXEL_TAGS}:
            # Pixel data is the same in the view as in the archive.
            rendition, parts = wado.bulkdata(inst, path, ctx.ranges)
        else:
            rendition, parts = _header_bulkdata(ctx, inst, path)
        ctx.audit.record(ctx.studies, action="vendor.wado.bulkdata")
        return _parts(rendition, parts)

    return ctx.run("vendor.wado.bulkdata", answer)


def _header_bulkdata(ctx: VendorContext, inst: wado.StoredInstance, path: str
                     ) -> tuple[FrameRendition, list[bytes]]:
    """A binary value of the de-identified header (what the profile removed is not there)."""
    try:
        header = ctx.view.header_only(inst)
    except Withheld as exc:
        raise Forbidden(f"withheld from the de-identified view: {exc.reason}") from None
    elem = find_element(header, path)
    if elem is None or elem.is_empty or elem.tag == PIXEL_DATA:
        raise NotFound("no bulk data at that location in the instance")
    if elem.VR not in BINARY_VRS and " or " not in str(elem.VR):
        raise NotFound("the attribute at that location is not bulk data")
    rendition = negotiate_frames(ctx.ranges, NATIVE, single_allowed=True)
    if rendition.media_type != OCTET_STREAM:
        raise NotAcceptable(f"bulk data is sent as {OCTET_STREAM}")
    vr = "OW" if " or " in str(elem.VR) else str(elem.VR)
    value = to_little_endian(bytes(elem.value), vr,
                             little_endian=inst.transfer_syntax_uid != str(ExplicitVRBigEndian))
    return rendition, [value]


# --- grants (administrators) -------------------------------------------------------------------


def _grant_out(username: str, grant: Any) -> GrantOut:
    return GrantOut(username=username, study_instance_uid=grant.study_instance_uid,
                    granted_by=grant.granted_by, granted_at=grant.granted_at)


@admin.get("/grants")
def list_grants(radai: RadaiDep,
                username: Annotated[str | None, Query(max_length=64)] = None) -> list[GrantOut]:
    """Which studies each vendor account may see (original UIDs), by account."""
    with radai.db.session() as session:
        return [_grant_out(name, g) for name, g in service.list_grants(session, username=username)]


@admin.post("/grants", status_code=201)
def grant(body: GrantIn, radai: RadaiDep, user: CurrentUser, audit: Audit) -> list[GrantOut]:
    """Let a vendor account see studies, de-identified: a list of studies or the studies of a
    dataset version (each grant is written to the audit log)."""
    try:
        with radai.db.transaction() as session:
            uids = (service.dataset_studies(session, dataset=body.dataset) if body.dataset is not None
                    else body.study_instance_uids)
            grants = service.grant_studies(session, username=body.username, study_uids=uids,
                                           granted_by=user.username)
            out = [_grant_out(body.username, g) for g in grants]
    except service.NoSuchUser as exc:
        raise HTTPException(404, str(exc)) from None
    except service.GrantError as exc:
        raise HTTPException(422, str(exc)) from None
    audit.record([g.study_instance_uid for g in out], action="vendor.grant", status=201)
    return out


@admin.delete("/grants/{username}/studies/{study_uid}", status_code=204)
def revoke(username: str, study_uid: str, radai: RadaiDep, audit: Audit) -> Response:
    """Take a study away from a vendor account."""
    try:
        with radai.db.transaction() as session:
            service.revoke_study(session, username=username, study_uid=study_uid)
    except service.GrantError as exc:
        raise HTTPException(404, str(exc)) from None
    audit.record(study_uid, action="vendor.revoke", status=204)
    return Response(status_code=204)
