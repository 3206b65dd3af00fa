"""Prometheus metrics; one registry per running radai (no global state).

Label values come from fixed vocabularies (source, outcome, reason, model id), never
from dataset content.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The metrics radai exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.instances_received = Counter(
            "radai_instances_received_total", "Instances received, by source and outcome",
            ["source", "outcome"], registry=self.registry)
        self.instances_rejected = Counter(
            "radai_instances_rejected_total", "Instances refused, by source and reason",
            ["source", "reason"], registry=self.registry)
        self.dimse_requests = Counter(
            "radai_dimse_requests_total", "DIMSE requests handled, by message and status class",
            ["message", "status"], registry=self.registry)
        self.http_requests = Counter(
            "radai_http_requests_total", "HTTP requests, by route and status code",
            ["route", "method", "status"], registry=self.registry)
        self.http_latency = Histogram(
            "radai_http_request_seconds", "HTTP request duration by route",
            ["route"], registry=self.registry)
        self.studies_stable = Counter(
            "radai_studies_stable_total", "Stability events fired", registry=self.registry)
        self.associations_active = Gauge(
            "radai_dimse_associations_active", "Open DIMSE associations", registry=self.registry)
