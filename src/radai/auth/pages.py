"""The ``/audit`` page: the audit log for auditors and admins, with filters, paging and CSV export.

It reads the same rows as ``GET /api/v1/audit`` (:func:`radai.auth.audit.query_audit`) and,
like it, records every view of the log as ``audit.read``. The export link points at
``/api/v1/audit.csv`` with the same filters (the export records ``audit.export``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from radai.auth.audit import AuditFilter, Outcome, query_audit
from radai.auth.deps import Audit
from radai.auth.roles import Capability
from radai.web.deps import RadaiDep
from radai.web.pages import NavItem, add_nav, render

router = APIRouter(include_in_schema=False)

add_nav(NavItem("Audit", "/audit", Capability.READ_AUDIT))

PAGE_SIZES = (25, 50, 100, 200)


class _FilterError(ValueError):
    """A filter field that cannot be read; the message names it."""


def _time(name: str, value: str) -> datetime | None:
    """A time from the form (``datetime-local`` gives no zone: it is taken as UTC)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _FilterError(f"{name} must be a date and time such as 2025-01-31T08:00") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _filter(form: dict[str, str]) -> AuditFilter:
    outcome = form["outcome"]
    if outcome and outcome not in {o.value for o in Outcome}:
        raise _FilterError("outcome must be allowed or denied")
    return AuditFilter(actor=form["actor"] or None, action=form["action"] or None,
                       study_uid=form["study_uid"] or None, client=form["client"] or None,
                       destination=form["destination"] or None,
                       outcome=Outcome(outcome) if outcome else None,
                       since=_time("from", form["since"]), until=_time("until", form["until"]))


@router.get("/audit")
def audit_page(request: Request, radai: RadaiDep, audit: Audit,
               actor: Annotated[str, Query(max_length=64)] = "",
               action: Annotated[str, Query(max_length=128)] = "",
               study_uid: Annotated[str, Query(max_length=64)] = "",
               outcome: Annotated[str, Query(max_length=16)] = "",
               client: Annotated[str, Query(max_length=64)] = "",
               destination: Annotated[str, Query(max_length=64)] = "",
               since: Annotated[str, Query(max_length=40)] = "",
               until: Annotated[str, Query(max_length=40)] = "",
               limit: Annotated[int, Query(ge=1, le=200)] = 50,
               offset: Annotated[int, Query(ge=0)] = 0) -> Response:
    """Audit log rows matching the filters, newest first (this view is itself audited)."""
    form = {"actor": actor.strip(), "action": action.strip(), "study_uid": study_uid.strip(),
            "outcome": outcome.strip(), "client": client.strip(),
            "destination": destination.strip(), "since": since.strip(),
            "until": until.strip()}
    query = {k: v for k, v in form.items() if v}
    try:
        flt = _filter(form)
    except _FilterError as exc:
        return render(request, "audit.html", {"form": form, "error": str(exc), "rows": [], "total": 0,
                                              "limit": limit, "offset": 0, "sizes": PAGE_SIZES,
                                              "csv_url": None, "newer_url": None, "older_url": None},
                      status_code=422)
    with radai.db.session() as session:
        total, rows = query_audit(session, flt=flt, limit=limit, offset=offset)
    audit.record(None, action="audit.read")

    def page_url(start: int) -> str:
        return "/audit?" + urlencode({**query, "limit": limit, "offset": start})

    return render(request, "audit.html", {
        "form": form, "error": None, "rows": rows, "total": total, "limit": limit, "offset": offset,
        "sizes": PAGE_SIZES,
        "csv_url": "/api/v1/audit.csv" + (f"?{urlencode(query)}" if query else ""),
        "newer_url": page_url(max(offset - limit, 0)) if offset > 0 else None,
        "older_url": page_url(offset + limit) if offset + limit < total else None,
    })

