"""Static files of the UI: radai's own CSS/JS and the pinned npm packages it serves."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)

_STATIC = Path(__file__).parent / "static"
#: Files served from node_modules, by public name (nothing else of node_modules is exposed).
_VENDOR = {"htmx.min.js": ("htmx.org", "dist/htmx.min.js")}


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """radai's own stylesheet and script."""
    path = _STATIC / name
    if "/" in name or not path.is_file():
        raise HTTPException(404)
    return FileResponse(path, headers={"Cache-Control": "max-age=300"})


@router.get("/static/vendor/{name}")
def vendor_file(name: str) -> FileResponse:
    """A file of a pinned npm package."""
    from radai.web.pages import node_modules_dir

    entry = _VENDOR.get(name)
    if entry is None:
        raise HTTPException(404)
    path = node_modules_dir() / entry[0] / entry[1]
    if not path.is_file():
        raise HTTPException(503, "npm packages are not installed (make setup fetches them)")
    return FileResponse(path, headers={"Cache-Control": "max-age=86400"})
