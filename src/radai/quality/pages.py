"""The validation runs page (``/validations``) in the shared layout."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from radai.auth.roles import Capability
from radai.quality.schemas import RunOut
from radai.quality.service import list_runs
from radai.web.deps import RadaiDep
from radai.web.pages import NavItem, add_nav, render

router = APIRouter(include_in_schema=False)

add_nav(NavItem("Validations", "/validations", Capability.READ_STUDIES))


@router.get("/validations", response_class=HTMLResponse)
def validations_page(request: Request, radai: RadaiDep) -> HTMLResponse:
    """Every validation run, newest first, with AUC and interval per finding and the verdict."""
    with radai.db.session() as s:
        runs, total = list_runs(s, limit=200)
        items = [RunOut.of(r) for r in runs]
    return render(request, "validations.html", {"runs": items, "total": total})
