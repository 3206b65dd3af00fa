"""Alerts: opening and closing them from checks, suspending models, webhook notifications.

An alert is keyed by (model id, version, site, window, metric, subject). An evaluated
check over its threshold opens the alert for its key unless one is open; an evaluated
check within its threshold closes the open one; an unevaluated check (too little data)
changes nothing. Opening is a conditional insert on the unique ``open_key`` and
closing a conditional update of the open row, so that any number of radai processes
evaluating at once open and close each alert once; only the process whose statement
changed the row logs it, queues its notification and acts on it (suspension).

**Automatic suspension.** When an alert of a metric listed in ``monitoring.suspend_on``
opens and the model version is live, the version is moved to ``suspended`` through the
registry (radai.models.registry.ModelRegistry.set_state, actor ``monitoring``, the
reason naming the metric, value, threshold and window), which records the change in the
version's lifecycle history; routing sends clinical studies only to live versions. An
alert of any site suspends the whole version (the registry has no per-site state).
Suspension is never lifted automatically: a person re-enables the model.

**Notifications.** With ``monitoring.webhook.url`` set, every opening and closing is
queued as a :class:`~radai.monitoring.models.AlertNotification` in the transaction that
changes the alert, and POSTed as JSON (:func:`payload`). A notification is claimed by a
conditional update of its due time (one sender at a time across processes), retried
with exponential backoff, and marked failed after ``max_attempts`` tries; every failure
is logged with its HTTP status or error type.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from radai.db import Database, utcnow
from radai.models.manifest import LifecycleState
from radai.models.registry import InvalidTransition, ModelNotFound, ModelRegistry
from radai.monitoring.evaluation import Check, WindowReport
from radai.monitoring.models import Alert, AlertNotification, AlertState, NotificationState
from radai.monitoring.service import VersionReport
from radai.monitoring.settings import MonitoringSettings, WebhookSettings

log = logging.getLogger(__name__)

#: The registry actor of automatic suspensions.
ACTOR = "monitoring"
#: How long a claimed notification is held before another sender may try it.
_CLAIM_SECONDS = 120.0


def alert_key(*, model_id: str, model_version: str, site: str, window: str, metric: str,
              subject: str) -> str:
    """The digest that identifies an open alert (the ``open_key`` column)."""
    raw = "\\".join((model_id, model_version, site, window, metric, subject))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AlertChange:
    """An alert this process opened or closed."""

    alert_id: int
    #: ``opened`` or ``closed``.
    event: str
    model_id: str
    model_version: str
    site: str
    window: str
    metric: str
    subject: str
    value: float
    threshold: float


def _insert(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert


def apply_checks(db: Database, report: VersionReport, *, settings: MonitoringSettings,
                 now: datetime | None = None) -> list[AlertChange]:
    """Open and close alerts from every evaluated check of ``report`` (one transaction)."""
    now = now or utcnow()
    changes: list[AlertChange] = []
    notify = settings.webhook.url is not None
    with db.transaction() as s:
        insert = _insert(s)
        for window in report.windows:
            for check in window.checks:
                if not check.evaluated or check.value is None or check.threshold is None:
                    continue
                change = _apply(s, insert, window, check, now)
                if change is not None:
                    changes.append(change)
                    if notify:
                        s.execute(insert(AlertNotification).values(
                            alert_pk=change.alert_id, event=change.event,
                            state=NotificationState.PENDING.value, attempts=0, next_attempt_at=now,
                            last_error="", created_at=now).on_conflict_do_nothing(
                            index_elements=["alert_pk", "event"]))
    for c in changes:
        where = f" site {c.site!r}" if c.site else ""
        log.warning("monitoring alert %d %s: model %s@%s%s window %s: %s%s = %.4g (threshold %.4g)",
                    c.alert_id, c.event, c.model_id, c.model_version, where, c.window, c.metric,
                    f" of {c.subject}" if c.subject else "", c.value, c.threshold)
    return changes


def _apply(s: Session, insert: Any, window: WindowReport, check: Check, now: datetime) -> AlertChange | None:
    assert check.value is not None and check.threshold is not None
    key = alert_key(model_id=window.model_id, model_version=window.model_version, site=window.site,
                    window=window.window.name, metric=check.metric.value, subject=check.subject)
    ident = {"model_id": window.model_id, "model_version": window.model_version, "site": window.site,
             "window": window.window.name, "metric": check.metric.value, "subject": check.subject}
    if check.breached:
        opened = s.execute(insert(Alert).values(
            open_key=key, direction=check.direction, value=check.value, threshold=check.threshold,
            sample_size=check.sample_size, state=AlertState.OPEN.value, opened_at=now,
            last_value=check.value, last_evaluated_at=now, action="", **ident,
        ).on_conflict_do_nothing(index_elements=["open_key"]).returning(Alert.id)).scalar_one_or_none()
        if opened is not None:
            return AlertChange(opened, "opened", value=check.value, threshold=check.threshold, **ident)
        s.execute(update(Alert).where(Alert.open_key == key).values(
            last_value=check.value, last_evaluated_at=now, sample_size=check.sample_size))
        return None
    closed = s.execute(update(Alert).where(Alert.open_key == key, Alert.state == AlertState.OPEN.value)
                       .values(state=AlertState.CLOSED.value, open_key=None, closed_at=now,
                               last_value=check.value, last_evaluated_at=now)
                       .returning(Alert.id)).scalar_one_or_none()
    if closed is not None:
        return AlertChange(closed, "closed", value=check.value, threshold=check.threshold, **ident)
    return None


def suspend_for(db: Database, registry: ModelRegistry, changes: Sequence[AlertChange], *,
                settings: MonitoringSettings) -> list[tuple[str, str]]:
    """Suspend the live versions whose newly opened alerts are of a ``suspend_on`` metric.

    Returns the (id, version) pairs suspended now.
    """
    suspended: list[tuple[str, str]] = []
    wanted = {m.value for m in settings.suspend_on}
    for c in changes:
        if c.event != "opened" or c.metric not in wanted:
            continue
        try:
            record = registry.get(c.model_id, c.model_version)
        except ModelNotFound:
            continue
        if record.state != LifecycleState.LIVE:
            continue
        subject = f" of {c.subject}" if c.subject else ""
        where = f", site {c.site}" if c.site else ""
        reason = (f"monitoring alert {c.alert_id}: {c.metric}{subject} = {c.value:.4g} crossed the threshold "
                  f"{c.threshold:.4g} over window {c.window}{where}")
        try:
            registry.set_state(c.model_id, c.model_version, LifecycleState.SUSPENDED, reason=reason,
                               actor=ACTOR)
        except InvalidTransition:
            continue
        with db.transaction() as s:
            s.execute(update(Alert).where(Alert.id == c.alert_id).values(action="suspended"))
        log.warning("model %s@%s suspended by monitoring (alert %d, %s)", c.model_id, c.model_version,
                    c.alert_id, c.metric)
        suspended.append((c.model_id, c.model_version))
    return suspended


# --- notifications --------------------------------------------------------------------


def payload(alert: Alert, event: str, *, dashboard_url: str | None = None) -> dict[str, Any]:
    """The JSON POSTed for an alert's opening or closing (aggregates only, no patient data)."""
    return {
        "event": event,
        "alert": {
            "id": alert.id, "model_id": alert.model_id, "model_version": alert.model_version,
            "site": alert.site, "window": alert.window, "metric": alert.metric, "subject": alert.subject,
            "direction": alert.direction, "value": alert.value, "threshold": alert.threshold,
            "last_value": alert.last_value, "sample_size": alert.sample_size, "state": alert.state,
            "opened_at": alert.opened_at.isoformat(),
            "closed_at": alert.closed_at.isoformat() if alert.closed_at else None,
            "action": alert.action,
        },
        "dashboard": dashboard_url,
    }


def _backoff(attempt: int, hook: WebhookSettings) -> float:
    return float(min(hook.retry_max_seconds, hook.retry_base_seconds * 2 ** max(0, attempt - 1)))


def deliver_due(db: Database, hook: WebhookSettings, *, dashboard_url: str | None = None,
                client: httpx.Client | None = None, limit: int = 50) -> int:
    """POST every due notification once (claimed first); returns how many were sent."""
    if hook.url is None:
        return 0
    now = utcnow()
    with db.session() as s:
        due = list(s.scalars(select(AlertNotification.id).where(
            AlertNotification.state == NotificationState.PENDING.value,
            AlertNotification.next_attempt_at <= now).order_by(AlertNotification.id).limit(limit)))
    own = client is None
    http = client or httpx.Client(timeout=hook.timeout_seconds)
    sent = 0
    try:
        for notification_id in due:
            sent += int(_deliver_one(db, hook, http, notification_id, dashboard_url))
    finally:
        if own:
            http.close()
    return sent


def _deliver_one(db: Database, hook: WebhookSettings, http: httpx.Client, notification_id: int,
                 dashboard_url: str | None) -> bool:
    assert hook.url is not None
    now = utcnow()
    with db.transaction() as s:
        claimed = s.execute(update(AlertNotification).where(
            AlertNotification.id == notification_id,
            AlertNotification.state == NotificationState.PENDING.value,
            AlertNotification.next_attempt_at <= now,
        ).values(next_attempt_at=now + timedelta(seconds=_CLAIM_SECONDS),
                 attempts=AlertNotification.attempts + 1))
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return False
        n = s.get(AlertNotification, notification_id)
        assert n is not None
        alert = s.get(Alert, n.alert_pk)
        assert alert is not None
        body, attempts, event = payload(alert, n.event, dashboard_url=dashboard_url), n.attempts, n.event
    headers = {"Content-Type": "application/json"}
    if hook.authorization is not None:
        headers["Authorization"] = hook.authorization.get_secret_value()
    error = ""
    try:
        response = http.post(hook.url, json=body, headers=headers, timeout=hook.timeout_seconds)
        if not 200 <= response.status_code < 300:
            error = f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    with db.transaction() as s:
        n = s.get(AlertNotification, notification_id)
        assert n is not None
        if not error:
            n.state, n.sent_at, n.last_error = NotificationState.SENT.value, utcnow(), ""
            return True
        n.last_error = error[:256]
        if attempts >= hook.max_attempts:
            n.state = NotificationState.FAILED.value
            log.error("webhook notification %d (%s of alert %d) failed for good after %d tries: %s",
                      notification_id, event, n.alert_pk, attempts, error)
        else:
            n.next_attempt_at = utcnow() + timedelta(seconds=_backoff(attempts, hook))
            log.warning("webhook notification %d (%s of alert %d) try %d failed: %s", notification_id,
                        event, n.alert_pk, attempts, error)
    return False
