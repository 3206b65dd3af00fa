"""Composition root: builds one radai process from its settings.

:class:`Radai` owns every long-lived part (database, storage, indexer, stability monitor,
DIMSE server, workers) and starts and stops them together. Nothing is opened at
import time. The web application is built by :func:`build_web_app`, which imports the
routers lazily so that route modules can depend on :class:`Radai`.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from radai.archive.indexer import Indexer
from radai.archive.service import Archive
from radai.archive.stability import StabilityMonitor
from radai.archive.storage import FileStorage
from radai.config import Settings
from radai.db import Database
from radai.dimse.server import DimseServer
from radai.inference.events import TaskEventHub
from radai.logs import keep_values_out_of_pydicom_logs
from radai.metrics import Metrics
from radai.models.registry import ModelRegistry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi import FastAPI

log = logging.getLogger(__name__)


class Component(Protocol):
    """A part of radai that runs in the background while radai serves."""

    name: str

    def start(self) -> None:
        """Start; raise if it cannot run (radai then does not start)."""

    def stop(self) -> None:
        """Stop and release what it holds."""


class Radai:
    """Everything one radai process runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        keep_values_out_of_pydicom_logs()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = Metrics()
        self.db = Database(settings.resolved_database_url)
        self.storage = FileStorage(settings.storage_dir, fsync=settings.archive.fsync)
        self.indexer = Indexer(self.db, batch_size=settings.archive.index_batch_size)
        self.archive = Archive(db=self.db, storage=self.storage, indexer=self.indexer,
                               metrics=self.metrics)
        self.stability = StabilityMonitor(
            self.db, quiet_seconds=settings.archive.stability_seconds,
            poll_seconds=settings.archive.stability_poll_seconds, metrics=self.metrics)
        self.models = ModelRegistry(db=self.db, settings=settings)
        #: Listeners of ended inference tasks (results, worklist): see radai.inference.events.
        self.task_events = TaskEventHub()
        self._components: list[Component] = []
        self._started: list[Component] = []

    def add_component(self, component: Component) -> None:
        """Run ``component`` while radai serves (started in the order added)."""
        self._components.append(component)

    def prepare(self) -> None:
        """Migrate the database and start the parts every command needs (indexing)."""
        self.db.migrate()
        self.models.sync()
        self.indexer.start()

    def start(self) -> None:
        """Start everything for serving: indexer, stability monitor, DIMSE, workers."""
        self.prepare()
        self._build_serving_components()
        try:
            for component in self._components:
                component.start()
                self._started.append(component)
                log.info("started %s", component.name)
        except Exception:
            self.stop()
            raise

    def _build_serving_components(self) -> None:
        if self._components:
            return
        from radai.inference.executor import build_executor
        from radai.results.metrics import ResultsMetrics
        from radai.results.outbox import Outbox
        from radai.results.producer import ResultWorker
        from radai.routing.listener import Router

        executor = build_executor(self)
        # Routing checks its rules and listens before the first stability event can fire;
        # it wakes the executor when it has created tasks.
        self.add_component(Router(settings=self.settings.routing, registry=self.models,
                                  stability=self.stability, on_routed=executor.wake))
        self.add_component(_Thread("stability", self.stability.start, self.stability.stop))
        self.add_component(DimseServer(self))
        # Results: the outbox delivers what the result worker stores; the worker's task
        # listeners are registered when it is built, before the executor starts.
        results_metrics = ResultsMetrics.on(self.metrics.registry)
        outbox = Outbox(db=self.db, archive=self.archive, settings=self.settings.results,
                        calling_ae_title=self.settings.ae_title, metrics=results_metrics)
        self.add_component(outbox)
        if self.settings.results.enabled:
            self.add_component(ResultWorker(
                db=self.db, archive=self.archive, settings=self.settings.results,
                data_dir=self.settings.data_dir, events=self.task_events, on_ready=outbox.wake,
                metrics=results_metrics))
        if self.settings.monitoring.enabled:
            from radai.monitoring.monitor import Monitor

            # Periodic evaluation of live models (drift, defects, agreement, latency, alerts).
            self.add_component(Monitor(
                db=self.db, storage=self.storage, registry=self.models, settings=self.settings.monitoring,
                level=self.settings.quality.confidence_level,
                dashboard_url=f"{self.settings.public_base_url}/monitoring"))
        self.add_component(executor)

    def stop(self) -> None:
        """Stop every started component (last started first), then the indexer."""
        while self._started:
            component = self._started.pop()
            try:
                component.stop()
            except Exception:
                log.exception("stopping %s failed", component.name)
        self.archive.close()
        self.indexer.stop()
        self.db.dispose()
        log.info("radai stopped")

    def component_status(self) -> dict[str, str]:
        """Name → state of each serving component, for ``/healthz``."""
        return {c.name: "running" if c in self._started else "stopped" for c in self._components}


class _Thread:
    """Adapts start/stop callables to :class:`Component`."""

    def __init__(self, name: str, start: Any, stop: Any) -> None:
        self.name = name
        self._start = start
        self._stop = stop

    def start(self) -> None:
        self._start()

    def stop(self) -> None:
        self._stop()


def build_web_app(radai: Radai, *, manage_lifecycle: bool = False) -> FastAPI:
    """The HTTP application: DICOMweb, JSON API, pages, health and metrics.

    With ``manage_lifecycle`` the app starts and stops ``radai`` itself (for test
    clients); ``radai serve`` starts radai before the HTTP server instead.
    """
    from fastapi import FastAPI

    from radai.auth.web import install as install_auth
    from radai.web import health

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            radai.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                radai.stop()

    app = FastAPI(title="radai", version=_version(), lifespan=lifespan,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.radai = radai
    # Every route added to the app from here on is behind authentication (radai.auth).
    install_auth(app, radai)
    app.include_router(health.router)
    from radai.auth.deps import protected
    from radai.auth.roles import Capability
    from radai.dicomweb.router import router as dicomweb_router

    # /dicom-web (PS3.18): identified images and metadata, for users who may read studies;
    # STOW-RS also needs store_studies.
    app.include_router(dicomweb_router, dependencies=protected(
        Capability.READ_STUDIES, write_capability=Capability.STORE_STUDIES))
    from radai.results.router import router as results_router

    app.include_router(results_router, dependencies=protected(Capability.READ_STUDIES))
    from radai.inference.router import router as inference_router

    # /api/v1 tasks, findings, heatmaps and routing decisions: they name studies.
    app.include_router(inference_router, dependencies=protected(Capability.READ_STUDIES))
    from radai.worklist.pages import router as worklist_pages
    from radai.worklist.router import router as worklist_router

    # /api/v1/worklist, /worklist and /studies/{uid}: the radiologist workspace, for users who
    # may read studies; verdicts, missed findings and reports also need review. Its
    # navigation entry comes first: the worklist is a radiologist's home page.
    app.include_router(worklist_router, dependencies=protected(
        Capability.READ_STUDIES, write_capability=Capability.REVIEW))
    app.include_router(worklist_pages, dependencies=protected(
        Capability.READ_STUDIES, write_capability=Capability.REVIEW))
    from radai.datasets.router import router as datasets_router

    # /api/v1/datasets: a version's manifest names its studies; creating and freezing
    # datasets also need manage_models.
    app.include_router(datasets_router, dependencies=protected(
        Capability.READ_STUDIES, write_capability=Capability.MANAGE_MODELS))
    from radai.quality.pages import router as quality_pages
    from radai.quality.router import router as quality_router

    # /api/v1/validations and /validations: validation runs and their reports (studies
    # appear only under dataset keys), for users who may read studies.
    app.include_router(quality_router, dependencies=protected(Capability.READ_STUDIES))
    app.include_router(quality_pages, dependencies=protected(Capability.READ_STUDIES))
    from fastapi import Depends

    from radai.auth.deps import Guard
    from radai.vendor import router as vendor

    # /vendor/dicom-web: de-identified DICOMweb (PS3.15 Annex E) for outside model vendors,
    # granted studies only; every request is audited. Grants are managed by admins.
    vendor.prepare(app, radai.settings)
    app.include_router(vendor.router, dependencies=[
        Depends(Guard(capability=Capability.VENDOR_VIEW, audited=True))])
    app.include_router(vendor.admin, dependencies=protected(Capability.MANAGE_USERS))
    from radai.viewer.router import router as viewer_router

    # /viewer: the OHIF viewer's own files (no patient data: its images come from
    # /dicom-web, audited there), for users who may read studies; not audited per file.
    app.include_router(viewer_router, dependencies=[
        Depends(Guard(capability=Capability.READ_STUDIES, audited=False))])
    from radai.models.router import api as models_api
    from radai.models.router import pages as models_pages

    # /api/v1/models and /models: anyone signed in reads; state changes need manage_models.
    app.include_router(models_api, dependencies=protected(write_capability=Capability.MANAGE_MODELS))
    app.include_router(models_pages, dependencies=protected(write_capability=Capability.MANAGE_MODELS))
    from radai.auth.pages import router as audit_pages

    # /audit: the audit log page (it holds study UIDs), for auditors and admins.
    app.include_router(audit_pages, dependencies=protected(Capability.READ_AUDIT))
    from radai.monitoring.router import api as monitoring_api
    from radai.monitoring.router import pages as monitoring_pages

    # /api/v1/monitoring and /monitoring: metrics, alerts and samples, for those who manage models.
    app.include_router(monitoring_api, dependencies=protected(Capability.MANAGE_MODELS))
    app.include_router(monitoring_pages, dependencies=protected(Capability.MANAGE_MODELS))
    from radai.web import home, static_routes

    # UI: the layout's static files and the home page, for any signed-in user.
    app.include_router(static_routes.router, dependencies=protected())
    app.include_router(home.router, dependencies=protected())
    return app


def _version() -> str:
    from radai import __version__

    return __version__
