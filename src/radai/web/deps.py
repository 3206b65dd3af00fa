"""Dependencies shared by the HTTP routes.

``radai.app`` imports the routers inside ``build_web_app`` (not at module level), so
route modules may import :class:`radai.app.Radai` here without an import cycle.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from radai.app import Radai


def get_radai(request: Request) -> Radai:
    """The running radai this request is served by."""
    radai: Radai = request.app.state.radai
    return radai


#: The running radai, as a route parameter: ``radai: RadaiDep``.
RadaiDep = Annotated[Radai, Depends(get_radai)]
