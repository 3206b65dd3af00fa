"""The role matrix, and its enforcement on real routes for every role and capability."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from radai.auth.deps import CurrentUser, protected, require_roles
from radai.auth.roles import ROLE_MATRIX, Capability, Role, capabilities_of, parse_role

#: The policy, written out independently of radai.auth.roles: role -> what it may do.
EXPECTED: dict[Role, set[str]] = {
    Role.ADMIN: {"read_studies", "store_studies", "manage_models", "manage_users", "read_audit",
                 "vendor_view", "view_metrics"},
    Role.RADIOLOGIST: {"read_studies", "store_studies", "review", "annotate"},
    Role.ANNOTATOR: {"read_studies", "annotate"},
    Role.VENDOR: {"vendor_view"},
    Role.AUDITOR: {"read_audit", "view_metrics"},
}


def test_role_matrix_is_the_documented_policy() -> None:
    assert set(ROLE_MATRIX) == set(Capability)
    for role, allowed in EXPECTED.items():
        assert {c.value for c in capabilities_of([role])} == allowed, role
    # Roles add up.
    assert capabilities_of([Role.VENDOR, Role.AUDITOR]) == capabilities_of([Role.VENDOR]) | \
        capabilities_of([Role.AUDITOR])
    # Vendors never see identified patient data; auditors neither.
    for role in (Role.VENDOR, Role.AUDITOR):
        assert Capability.READ_STUDIES not in capabilities_of([role])


def test_parse_role_names_the_valid_roles() -> None:
    assert parse_role(" Radiologist ") is Role.RADIOLOGIST
    with pytest.raises(ValueError, match="admin, radiologist, annotator, vendor, auditor"):
        parse_role("superuser")


def _capability_routes(app: FastAPI) -> None:
    """One route per capability, mounted the way domain routers are."""
    for cap in Capability:
        router = APIRouter()

        @router.get(f"/api/v1/probe/{cap.value}")
        def probe(user: CurrentUser) -> dict[str, str]:
            return {"user": user.username}

        app.include_router(router, dependencies=protected(cap))

    by_role = APIRouter()

    @by_role.get("/api/v1/probe-roles", dependencies=[Depends(require_roles(Role.AUDITOR, Role.ADMIN))])
    def probe_roles() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(by_role)

    store = APIRouter(prefix="/api/v1/probe-store")

    @store.get("")
    def read_store() -> dict[str, bool]:
        return {"read": True}

    @store.post("")
    def write_store() -> dict[str, bool]:
        return {"written": True}

    app.include_router(store, dependencies=protected(Capability.READ_STUDIES,
                                                     write_capability=Capability.STORE_STUDIES))


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_exactly_its_capabilities(app: FastAPI, client: TestClient, role: Role,
                                                 user_headers: Callable[..., dict[str, str]]) -> None:
    _capability_routes(app)
    headers = user_headers(role)
    for cap in Capability:
        r = client.get(f"/api/v1/probe/{cap.value}", headers=headers)
        expected = 200 if cap.value in EXPECTED[role] else 403
        assert r.status_code == expected, f"{role} on {cap}: {r.status_code}"
        if expected == 403:
            assert cap.value in r.json()["detail"]
    r = client.get("/api/v1/probe-roles", headers=headers)
    assert r.status_code == (200 if role in (Role.AUDITOR, Role.ADMIN) else 403)
    can_read = "read_studies" in EXPECTED[role]
    can_store = can_read and "store_studies" in EXPECTED[role]
    assert client.get("/api/v1/probe-store", headers=headers).status_code == (200 if can_read else 403)
    assert client.post("/api/v1/probe-store", headers=headers).status_code == (200 if can_store else 403)
    # The real capability-guarded routes of the app follow the same matrix.
    assert client.get("/api/v1/users", headers=headers).status_code == \
        (200 if "manage_users" in EXPECTED[role] else 403)
    assert client.get("/api/v1/audit", headers=headers).status_code == \
        (200 if "read_audit" in EXPECTED[role] else 403)
    assert client.get("/dicom-web/studies", headers={**headers, "Accept": "application/dicom+json"}
                      ).status_code in ((200, 204) if can_read else (403,))


def test_roles_can_be_combined(auth_radai, client: TestClient,  # type: ignore[no-untyped-def]
                               user_headers: Callable[..., dict[str, str]]) -> None:
    headers = user_headers(Role.VENDOR, Role.AUDITOR)
    assert client.get("/api/v1/audit", headers=headers).status_code == 200
    assert client.get("/dicom-web/studies", headers=headers).status_code == 403
