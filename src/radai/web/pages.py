"""Server-rendered UI pages: one Jinja2 environment, one layout, one navigation.

Pages are plain HTML (Jinja2, autoescaped) with htmx for partial updates. Every domain
keeps its templates in its own package (``radai/<domain>/templates``) and renders them
through :func:`render`, which adds what the layout needs: the signed-in user, the CSRF
token for forms, and the navigation entries the user may open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

from radai.auth.deps import CSRF_FIELD, CSRF_HEADER, PRINCIPAL_KEY, csrf_token
from radai.auth.roles import Capability

#: Packages whose ``templates`` folder holds page templates (the layout lives in radai.web).
TEMPLATE_PACKAGES = ("radai.web", "radai.worklist", "radai.quality", "radai.datasets",
                     "radai.monitoring", "radai.vendor", "radai.models", "radai.auth")


@dataclass(frozen=True)
class NavItem:
    """A navigation entry, shown to users holding ``capability``."""

    label: str
    path: str
    capability: Capability


#: The navigation bar, in order. A domain adds its entry when it adds its pages.
NAVIGATION: list[NavItem] = []


def add_nav(item: NavItem) -> None:
    """Add a navigation entry once (domains call it when their router is included)."""
    if all(existing.path != item.path for existing in NAVIGATION):
        NAVIGATION.append(item)


@dataclass(frozen=True)
class Banner:
    """A notice shown above every page (e.g. open monitoring alerts), linking to ``href``."""

    text: str
    href: str | None = None
    #: ``alert`` or ``info`` (a CSS class of the banner).
    level: str = "alert"


#: Called for every page with the request and the signed-in principal; each returns the
#: banners that user should see. A domain adds its provider when its router is imported.
BannerProvider = Callable[[Request, Any], list[Banner]]
BANNERS: list[BannerProvider] = []


def add_banner(provider: BannerProvider) -> None:
    """Show the banners ``provider`` returns on every page (added once)."""
    if provider not in BANNERS:
        BANNERS.append(provider)


def _loader_for(package: str) -> PackageLoader | None:
    try:
        return PackageLoader(package, "templates")
    except (ValueError, ModuleNotFoundError):
        return None


@cache
def templates() -> Jinja2Templates:
    """The Jinja2 templates of every package in :data:`TEMPLATE_PACKAGES`."""
    loaders = [loader for p in TEMPLATE_PACKAGES if (loader := _loader_for(p)) is not None]
    env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(default=True),
                      auto_reload=False)
    return Jinja2Templates(env=env)


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status_code: int = 200) -> HTMLResponse:
    """A page rendered in the layout, for the signed-in user."""
    principal = request.scope.get(PRINCIPAL_KEY)
    allowed = [] if principal is None else [
        item for item in NAVIGATION if principal.may(item.capability)]
    ctx = {
        "request": request,
        "user": principal,
        "nav": allowed,
        "csrf_token": csrf_token(request) or "",
        "csrf_field": CSRF_FIELD,
        "csrf_header": CSRF_HEADER,
        "banners": [] if principal is None else [b for p in BANNERS for b in p(request, principal)],
        **(context or {}),
    }
    return templates().TemplateResponse(request, template, ctx, status_code=status_code)


def node_modules_dir() -> Path:
    """The folder holding the pinned npm packages (fetched by scripts/npm-deps.sh)."""
    here = Path(__file__).resolve()
    for candidate in (Path.cwd() / "node_modules", here.parents[3] / "node_modules"):
        if candidate.is_dir():
            return candidate
    return here.parents[3] / "node_modules"
