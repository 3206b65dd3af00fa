"""Prometheus metrics of result objects and their delivery, on radai's own registry.

Labels are object kinds (sr, sc, seg), configured destination names and fixed outcome
words, never dataset content.
"""

from __future__ import annotations

import threading
import weakref

from prometheus_client import CollectorRegistry, Counter, Histogram

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ResultsMetrics] = weakref.WeakKeyDictionary()


class ResultsMetrics:
    """Objects made, production failures, delivery tries and their duration."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.objects = Counter(
            "radai_result_objects_total", "Result objects stored in the archive, by kind",
            ["kind"], registry=registry)
        self.production_failures = Counter(
            "radai_result_production_failures_total", "Failed attempts to make a result's objects",
            registry=registry)
        self.deliveries = Counter(
            "radai_result_deliveries_total", "Delivery tries, by destination and outcome (delivered, failed)",
            ["destination", "outcome"], registry=registry)
        self.delivery_seconds = Histogram(
            "radai_result_delivery_seconds", "Time of one delivery batch, by destination",
            ["destination"], registry=registry)

    @classmethod
    def on(cls, registry: CollectorRegistry) -> ResultsMetrics:
        """The metrics registered on ``registry`` (created once per registry)."""
        with _lock:
            found = _by_registry.get(registry)
            if found is None:
                found = _by_registry[registry] = cls(registry)
            return found
