"""Health check and Prometheus metrics: the only routes open without authentication."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from radai.web.deps import RadaiDep

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
def healthz(radai: RadaiDep) -> dict[str, object]:
    """Liveness and readiness: the database answers and every component runs."""
    with radai.db.session() as s:
        s.execute(text("SELECT 1"))
    return {"status": "ok", "components": radai.component_status()}


@router.get("/metrics", include_in_schema=False)
def metrics(radai: RadaiDep) -> Response:
    """Prometheus text exposition of radai's metrics."""
    return Response(generate_latest(radai.metrics.registry), media_type=CONTENT_TYPE_LATEST)
