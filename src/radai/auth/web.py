"""Wiring of authentication into the web app (called by :func:`radai.app.build_web_app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from radai.auth import router
from radai.auth.middleware import AuthMiddleware
from radai.auth.passwords import Passwords

if TYPE_CHECKING:
    from fastapi import FastAPI

    from radai.app import Radai


def install(app: FastAPI, radai: Radai) -> None:
    """Authenticate every request of ``app`` and add the login, token, user and audit routes.

    Call it right after creating the app. Routers added afterwards are behind
    authentication whatever they declare; mount them with
    :func:`radai.auth.deps.protected` to also require a capability or roles.
    """
    env = Environment(loader=PackageLoader("radai.auth", "templates"),
                      autoescape=select_autoescape(default=True), auto_reload=False)
    app.state.radai_auth = router.AuthRuntime(passwords=Passwords(radai.settings.auth),
                                              templates=Jinja2Templates(env=env))
    app.add_middleware(AuthMiddleware)
    app.include_router(router.api)
    app.include_router(router.pages)
