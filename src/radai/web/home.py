"""The home page: sends each user to the first page their roles open."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from radai.auth.deps import PRINCIPAL_KEY
from radai.web.pages import NAVIGATION, render

router = APIRouter(include_in_schema=False)


@router.get("/", response_model=None)
def home(request: Request) -> Response:
    """Redirect to the user's first page (worklist for radiologists, audit for auditors…)."""
    principal = request.scope.get(PRINCIPAL_KEY)
    for item in NAVIGATION:
        if principal is not None and principal.may(item.capability):
            return RedirectResponse(item.path, status_code=303)
    page: HTMLResponse = render(request, "home.html")
    return page
