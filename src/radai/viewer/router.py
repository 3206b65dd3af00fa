"""``/viewer/``: the OHIF viewer's files, its configuration, and its single-page routes.

The viewer's files hold no patient data (the images come from ``/dicom-web``, which
checks and audits every request itself), so radai.app mounts this router for users who
may read studies without writing an audit row per script file.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from radai.viewer.appconfig import app_config_js
from radai.viewer.files import BASE, OhifBuild, ViewerFile, ViewerMissing, default_dist_dir
from radai.web.deps import RadaiDep

router = APIRouter(prefix=BASE, include_in_schema=False)

#: Revalidate on every use: the single-page app's entry point and radai's configuration
#: change when radai (or the pinned OHIF version) is upgraded.
_REVALIDATE = "no-cache"
_IMMUTABLE = "public, max-age=31536000, immutable"


def ohif_build(request: Request, radai: RadaiDep) -> OhifBuild:
    """The OHIF build this app serves (opened on first use, kept on the app)."""
    build: OhifBuild | None = getattr(request.app.state, "ohif_build", None)
    if build is None:
        build = OhifBuild(radai.settings.viewer.dist_dir or default_dist_dir())
        request.app.state.ohif_build = build
    return build


Build = Annotated[OhifBuild, Depends(ohif_build)]


def _answer(found: ViewerFile) -> Response:
    headers = {"Cache-Control": _IMMUTABLE if found.immutable else _REVALIDATE,
               "X-Content-Type-Options": "nosniff"}
    if found.content is not None:
        return Response(found.content, media_type=found.media_type, headers=headers)
    assert found.path is not None
    return FileResponse(found.path, media_type=found.media_type, headers=headers)


@router.get("", response_model=None)
def viewer_root() -> RedirectResponse:
    """``/viewer`` → ``/viewer/``."""
    return RedirectResponse(f"{BASE}/", status_code=308)


@router.get("/app-config.js")
def app_config(radai: RadaiDep) -> Response:
    """OHIF's configuration: one data source, radai's DICOMweb service on this origin."""
    return Response(app_config_js(radai.settings.viewer), media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": _REVALIDATE, "X-Content-Type-Options": "nosniff"})


@router.get("/{path:path}", response_model=None)
def viewer_file(path: str, build: Build) -> Response:
    """A file of the OHIF build, or ``index.html`` for the viewer's own routes."""
    try:
        found = build.resolve(path)
    except ViewerMissing as exc:
        raise HTTPException(503, str(exc)) from None
    if found is None:
        raise HTTPException(404, "no such file in the viewer")
    return _answer(found)
