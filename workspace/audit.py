"""The audit log: who in the store changed what and when, read from the `store.*` events on the
store's timeline (each names who made it and, for settings, the before and after of each field).

Read-only: events are append-only, so no route here (or anywhere) edits or deletes a line.
Everyone in the store reads it; `?format=csv` streams the same filter as CSV.
"""

import csv
import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Iterator
from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path

from lifecycle.event_types import EVENT_TYPES
from lifecycle.models import Event, Tenant
from lifecycle.tenancy import tenant_scope
from workspace.access import SAFE_METHODS, workspace_view
from workspace.customers import PAGE_SIZE, BadListRequest, decode_cursor, encode_cursor

TYPES = {name: EVENT_TYPES[name].description for name in EVENT_TYPES if name.startswith("store.")}
CSV_HEADER = ("when", "who", "what", "changes")
MAX_WHO = 254


@dataclasses.dataclass(frozen=True)
class Filter:
    who: str = ""
    what: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclasses.dataclass
class Line:
    pk: int
    when: dt.datetime
    who: str
    what: str
    changes: list[tuple[str, Any, Any]]
    details: str


def _day(request: HttpRequest, name: str, label: str, zone: zoneinfo.ZoneInfo, *, end: bool) -> dt.datetime | None:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise BadListRequest(f"{label} {raw!r} is not a date: write it as YYYY-MM-DD, such as 2026-03-31.") from exc
    if end:
        day = day + dt.timedelta(days=1) if day < dt.date.max else day
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone)


def audit_filter(request: HttpRequest, tenant: Tenant) -> Filter:
    """The search in the request's query string, or BadListRequest with what to fix."""
    zone = zoneinfo.ZoneInfo(tenant.time_zone)
    who = request.GET.get("who", "").strip()
    if len(who) > MAX_WHO:
        raise BadListRequest(f"Search for who with at most {MAX_WHO} characters.")
    what = request.GET.get("what", "")
    if what and what not in TYPES:
        raise BadListRequest(f"What {what!r} is not a kind of change this log records: choose one from the list.")
    since = _day(request, "from", "From", zone, end=False)
    until = _day(request, "to", "To", zone, end=True)
    if since and until and since >= until:
        raise BadListRequest("The date range ends before it starts: put the earlier date in From.")
    return Filter(who=who, what=what, since=since, until=until)


def audit_events(tenant: Tenant, search: Filter) -> QuerySet[Event]:
    events = Event.objects.for_tenant(tenant).filter(type__startswith="store.")
    if search.who:
        events = events.filter(data__by__iexact=search.who)
    if search.what:
        events = events.filter(type=search.what)
    if search.since:
        events = events.filter(occurred_at__gte=search.since)
    if search.until:
        events = events.filter(occurred_at__lt=search.until)
    return events.order_by("-occurred_at", "-pk")


def _shown(value: Any) -> Any:
    return "(empty)" if value in ("", None) else value


def audit_line(event: Event, zone: zoneinfo.ZoneInfo) -> Line:
    data = event.data if isinstance(event.data, dict) else {}
    changes = data.get("changes") if isinstance(data.get("changes"), dict) else {}
    pairs = [(name, *(_shown(v) for v in (pair if isinstance(pair, list) and len(pair) == 2 else [None, pair])))
             for name, pair in changes.items()]
    rest = {k: v for k, v in data.items() if k not in ("by", "changes", "fields")}
    if not changes and data.get("fields"):
        rest["fields"] = data["fields"]
    details = ", ".join(f"{k}: {v}" for k, v in rest.items())
    return Line(event.pk, event.occurred_at.astimezone(zone), str(data.get("by") or ""), event.type, pairs, details)


def audit_page(tenant: Tenant, search: Filter, after: str = "") -> tuple[list[Line], str | None]:
    events = audit_events(tenant, search)
    if after:
        when, pk = decode_cursor(after, 2)
        try:
            moment = dt.datetime.fromisoformat(when)
        except (TypeError, ValueError) as exc:
            raise BadListRequest("This page link is damaged: start again from the first page.") from exc
        if isinstance(pk, bool) or not isinstance(pk, int):
            raise BadListRequest("This page link is damaged: start again from the first page.")
        events = events.filter(Q(occurred_at__lt=moment) | Q(occurred_at=moment, pk__lt=pk))
    rows = list(events[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    zone = zoneinfo.ZoneInfo(tenant.time_zone)
    cursor = encode_cursor([rows[-1].occurred_at.isoformat(), rows[-1].pk]) if more else None
    return [audit_line(e, zone) for e in rows], cursor


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(tenant: Tenant, search: Filter) -> Iterator[str]:
    """The filter's lines as CSV, read in chunks inside the store's scope (the response streams after the view)."""
    writer = csv.writer(_Echo())
    zone = zoneinfo.ZoneInfo(tenant.time_zone)
    yield writer.writerow(CSV_HEADER)
    with tenant_scope(tenant):
        for event in audit_events(tenant, search).iterator(chunk_size=500):
            line = audit_line(event, zone)
            changes = "; ".join(f"{name}: {before} → {after}" for name, before, after in line.changes)
            yield writer.writerow([line.when.isoformat(), line.who, line.what,
                                   changes or line.details])


@workspace_view()
def audit_log(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Newest first, searchable by who, what and a date range; never edited."""
    if request.method not in SAFE_METHODS:
        return HttpResponseNotAllowed(["GET", "HEAD"], "The audit log is read-only: nothing here can be changed.")
    context: dict[str, Any] = {
        "section": "audit", "types": TYPES, "who": request.GET.get("who", "").strip(),
        "what": request.GET.get("what", ""), "date_from": request.GET.get("from", ""),
        "date_to": request.GET.get("to", ""), "read_only_note": "the audit log cannot be edited by anyone.",
    }
    template = "workspace/settings/audit.html"
    try:
        search = audit_filter(request, tenant)
        if request.GET.get("format") == "csv":
            response = StreamingHttpResponse(_csv_rows(tenant, search), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{tenant.slug}-audit-log.csv"'
            return response
        lines, cursor = audit_page(tenant, search, request.GET.get("after", ""))
    except BadListRequest as exc:
        return render(request, template, {**context, "error": str(exc), "lines": []}, status=400)
    filtered = any((search.who, search.what, search.since, search.until))
    return render(request, template, {**context, "lines": lines, "page": {"rows": lines, "next_cursor": cursor},
                                      "first_page": bool(request.GET.get("after")), "filtered": filtered})


urlpatterns = [
    path("settings/audit/", audit_log, name="settings-audit"),
]
