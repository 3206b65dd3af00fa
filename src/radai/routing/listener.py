"""The routing component: checks the rules at start-up, then routes every stable study.

Routing hangs on the stability event (radai.archive.stability): the listener runs
inside the event's transaction, so the tasks and the decision commit together with
the event, once per study change, also across restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from radai.archive.stability import StabilityMonitor, StableStudy
from radai.config import ConfigError
from radai.models.registry import ModelNotFound, ModelRegistry
from radai.routing.service import route_study
from radai.routing.settings import RoutingSettings, Rule

log = logging.getLogger(__name__)


def checked_rules(settings: RoutingSettings, registry: ModelRegistry) -> list[Rule]:
    """The rules that apply, each model they name checked against the registry.

    A configured rule naming a model (or version) that is not registered raises
    :class:`ConfigError` naming the rule. The embedded default rules are dropped
    quietly (logged) when their built-in model is not registered, e.g. with
    ``models.builtin = false``.
    """
    rules = []
    for rule in settings.effective_rules():
        known = []
        for ref in rule.models:
            try:
                registry.get(ref.id, ref.version)
            except ModelNotFound:
                if settings.using_defaults:
                    log.info("default routing rule %s: model %s is not registered; not used",
                             rule.name, ref.ref)
                    continue
                raise ConfigError(f"invalid setting routing.rules: rule {rule.name!r} names model "
                                  f"{ref.ref!r}, which is not registered") from None
            known.append(ref)
        if known:
            rules.append(rule.model_copy(update={"models": known}))
    return rules


class Router:
    """Routes stable studies (a :class:`radai.app.Component` named ``routing``)."""

    name = "routing"

    def __init__(self, *, settings: RoutingSettings, registry: ModelRegistry,
                 stability: StabilityMonitor, on_routed: Callable[[], None] | None = None) -> None:
        self._settings = settings
        #: Called after the commit of an event that created tasks (wakes the executor).
        self._on_routed = on_routed
        self._registry = registry
        self._stability = stability
        self._rules: list[Rule] | None = None
        self._listening = False

    @property
    def rules(self) -> list[Rule]:
        """The checked rules (after :meth:`start`)."""
        if self._rules is None:
            raise RuntimeError("the router has not started")
        return self._rules

    def start(self) -> None:
        """Check the rules (ConfigError stops radai) and listen to stability events.

        Must start before the stability monitor, so that no event fires unrouted.
        """
        self._rules = checked_rules(self._settings, self._registry)
        if not self._listening:
            self._stability.add_listener(self.on_stable)
            self._listening = True
        log.info("routing: %d rule(s)%s", len(self._rules),
                 " (embedded defaults)" if self._settings.using_defaults else "")

    def stop(self) -> None:
        """Nothing to release; events stop when the stability monitor stops."""

    def on_stable(self, session: Session, event: StableStudy) -> None:
        """Route one stability event inside its transaction."""
        decision = route_study(session, study_pk=event.study_pk, change_seq=event.change_seq,
                               rules=self.rules, registry=self._registry)
        if decision.task_count and self._on_routed is not None:
            on_routed = self._on_routed
            sa_event.listen(session, "after_commit", lambda _s: on_routed(), once=True)
