"""Models API (``/api/v1/models``) and the ``/models`` page.

Anyone signed in may read which model versions exist, what they are for, their licence
and lifecycle state; changing a state needs ``manage_models``. State changes go through
:meth:`radai.models.registry.ModelRegistry.set_state` (its transition rules, a reason,
the acting user) and are written to the audit log as ``models.state`` (no patient data).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from radai.app import Radai
from radai.auth.deps import Audit, CurrentUser
from radai.auth.roles import Capability
from radai.auth.service import Principal
from radai.models.manifest import LifecycleState
from radai.models.registry import (
    TRANSITIONS,
    InvalidTransition,
    ModelNotFound,
    ModelRecord,
    ModelRegistry,
    RegistryError,
    StateChange,
)
from radai.web.deps import RadaiDep
from radai.web.pages import NavItem, add_nav, render

api = APIRouter(prefix="/api/v1/models", tags=["models"])
pages = APIRouter(include_in_schema=False)

add_nav(NavItem("Models", "/models", Capability.MANAGE_MODELS))

#: What the page's buttons do: enable makes a version live, disable suspends it.
ENABLE, DISABLE = LifecycleState.LIVE, LifecycleState.SUSPENDED


# --- API types -----------------------------------------------------------------------------


class CodeOut(BaseModel):
    """A coded concept (PS3.3 §8.8)."""

    value: str
    scheme: str
    meaning: str


class FindingOut(BaseModel):
    """A finding the model reports, with its operating point."""

    label: str
    code: CodeOut
    threshold: float
    urgency: str


class ScopeOut(BaseModel):
    """Which images the model accepts."""

    modalities: list[str]
    body_parts: list[str]
    views: list[str]
    sop_classes: list[str]


class StateChangeOut(BaseModel):
    """One entry of a version's lifecycle history."""

    from_state: str
    to_state: str
    reason: str
    actor: str
    changed_at: datetime


class ModelVersionOut(BaseModel):
    """A registered model version."""

    id: str
    version: str
    name: str
    vendor: str
    state: LifecycleState
    origin: str
    #: The licence as the package declares it, e.g. "licence unknown — research use only".
    licence: str
    #: Whether the licence limits the model to research use (or leaves it unknown).
    research_use_only: bool
    intended_use: str
    description: str
    scope: ScopeOut
    outputs: list[FindingOut]
    claimed_metrics: dict[str, Any]
    registered_at: datetime | None
    state_changed_at: datetime | None
    #: States the version may move to from its current one.
    allowed_states: list[LifecycleState]


class ModelVersionDetail(ModelVersionOut):
    """A version with its lifecycle history."""

    history: list[StateChangeOut]


class ModelOut(BaseModel):
    """A model: every registered version, newest first."""

    id: str
    versions: list[ModelVersionDetail]


class StateChangeIn(BaseModel):
    """A lifecycle change: ``live`` enables a version, ``suspended`` disables it."""

    model_config = ConfigDict(extra="forbid")

    state: LifecycleState
    reason: str = Field(min_length=1, max_length=1000)


# --- building answers ---------------------------------------------------------------------


def research_use_only(licence: str) -> bool:
    """Whether a licence text limits use to research, or admits the licence is unknown."""
    text = licence.lower()
    return "research" in text or "unknown" in text or "non-commercial" in text


def version_out(record: ModelRecord) -> ModelVersionOut:
    """The API view of a registered version."""
    m = record.manifest
    return ModelVersionOut(
        id=record.model_id, version=record.version, name=m.name, vendor=m.vendor, state=record.state,
        origin=record.origin, licence=m.licence, research_use_only=research_use_only(m.licence),
        intended_use=m.intended_use, description=m.description,
        scope=ScopeOut(modalities=m.scope.modalities, body_parts=m.scope.body_parts, views=m.scope.views,
                       sop_classes=m.scope.sop_classes),
        outputs=[FindingOut(label=f.label, code=CodeOut(value=f.code.value, scheme=f.code.scheme,
                                                        meaning=f.code.meaning),
                            threshold=f.threshold, urgency=f.urgency) for f in m.outputs.findings],
        claimed_metrics={k: v for k, v in m.claimed_metrics.model_dump().items() if v is not None},
        registered_at=record.registered_at, state_changed_at=record.state_changed_at,
        allowed_states=sorted(TRANSITIONS[record.state]))


def _history(items: list[StateChange]) -> list[StateChangeOut]:
    return [StateChangeOut(from_state=h.from_state, to_state=h.to_state, reason=h.reason, actor=h.actor,
                           changed_at=h.changed_at) for h in items]


def change_state(registry: ModelRegistry, *, model_id: str, version: str, state: LifecycleState,
                 reason: str, actor: str) -> ModelRecord:
    """Move a version to ``state``; HTTP 404 (unknown), 409 (not allowed) or 422 (no reason)."""
    try:
        return registry.set_state(model_id, version, state, reason=reason, actor=actor)
    except ModelNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except InvalidTransition as exc:
        raise HTTPException(409, str(exc)) from None
    except RegistryError as exc:
        raise HTTPException(422, str(exc)) from None


# --- API ------------------------------------------------------------------------------------


@api.get("")
def list_models(radai: RadaiDep) -> list[ModelVersionOut]:
    """Every registered model version: id, version, vendor, state, licence, intended use,
    scope and outputs."""
    return [version_out(r) for r in radai.models.list()]


@api.get("/{model_id}", responses={404: {"description": "no such model"}})
def show_model(model_id: str, radai: RadaiDep) -> ModelOut:
    """One model: every version with its lifecycle history."""
    records = [r for r in radai.models.list() if r.model_id == model_id]
    if not records:
        raise HTTPException(404, "no such model")
    versions = [ModelVersionDetail(**version_out(r).model_dump(),
                                   history=_history(radai.models.history(r.model_id, r.version)))
                for r in records]
    return ModelOut(id=model_id, versions=versions)


@api.post("/{model_id}/{version}/state",
          responses={404: {"description": "no such model version"},
                     409: {"description": "the lifecycle does not allow this change"}})
def set_state(model_id: str, version: str, body: StateChangeIn, radai: RadaiDep, user: CurrentUser,
              audit: Audit) -> ModelVersionOut:
    """Change a version's lifecycle state (``live`` = enable, ``suspended`` = disable, other
    transitions as the registry allows); the reason is kept in the version's history."""
    record = change_state(radai.models, model_id=model_id, version=version, state=body.state,
                          reason=body.reason, actor=user.username)
    audit.record(None, action="models.state")
    return version_out(record)


# --- page -----------------------------------------------------------------------------------


def _page(request: Request, radai: Radai, user: Principal, *, error: str | None = None,
          status: int = 200) -> Response:
    return render(request, "models.html",
                  {"models": [version_out(r) for r in radai.models.list()],
                   "may_manage": user.may(Capability.MANAGE_MODELS),
                   "error": error, "enable": ENABLE.value, "disable": DISABLE.value},
                  status_code=status)


@pages.get("/models")
def models_page(request: Request, radai: RadaiDep, user: CurrentUser) -> Response:
    """Registered models with their state and licence; enable/disable buttons for admins."""
    return _page(request, radai, user)


@pages.post("/models/{model_id}/{version}/state")
def models_page_state(request: Request, model_id: str, version: str, radai: RadaiDep, user: CurrentUser,
                      audit: Audit, state: Annotated[str, Form(max_length=16)],
                      reason: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """The page's enable/disable form; back to the page (or the page with the error)."""
    try:
        wanted = LifecycleState(state)
        change_state(radai.models, model_id=model_id, version=version, state=wanted, reason=reason,
                     actor=user.username)
    except ValueError:
        return _page(request, radai, user, error="Unknown lifecycle state.", status=422)
    except HTTPException as exc:
        return _page(request, radai, user, error=str(exc.detail), status=exc.status_code)
    audit.record(None, action="models.state")
    return RedirectResponse("/models", status_code=303)
