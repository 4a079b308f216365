"""Orders: the list (newest placed first, filtered by status and date, searched by number, id or
email) and one order's page (lines, refunds, status times, its customer).

Built like the customer list (workspace/customers.py): keyset pages on
(placed_at, id) through the Order indexes in lifecycle/models.py, counts capped or estimated.
Orders we heard of only through a refund or a delivery (no placed_at yet, no customer) are
listed apart under the status "awaiting details", and found by number or id.
"""

import datetime as dt
import zoneinfo
from typing import Any

from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path

from lifecycle.extreme_times import day_end, day_start
from lifecycle.models import Customer, Event, Order, OrderLine, Refund, Tenant
from lifecycle.money import money_str
from lifecycle.numbers import calendar_date
from workspace.access import workspace_view
from workspace.customers import (
    PAGE_SIZE,
    BadListRequest,
    Page,
    bad_request,
    count_words,
    cursor_id,
    decode_cursor,
    encode_cursor,
)

PLACEHOLDER = "awaiting"
STATUS_FILTERS = {**{value: label.capitalize() for value, label in Order.Status.choices},
                  PLACEHOLDER: "Awaiting details"}
# A search by number or id finds a handful of orders at most; more than this is not a search.
SEARCH_LIMIT = 50
# The order page shows this many of the order's own events.
ORDER_EVENTS = 50


def parse_day(raw: str, label: str) -> dt.date | None:
    if not raw:
        return None
    day = calendar_date(raw)
    if day is None:
        raise BadListRequest(f"{label} {raw!r} is not a date such as 2026-11-23.")
    return day


def order_page(*, tenant: Tenant, q: str = "", status: str = "", date_from: dt.date | None = None,
               date_to: dt.date | None = None, after: str = "") -> Page:
    """One page of the tenant's orders, newest placed first.

    `q` with an @ lists the orders of the customers with exactly that email; otherwise it is an
    order number (with or without its #) or external id, matched exactly. Dates are whole days
    in the store's time zone, both ends included.
    """
    orders = Order.objects.for_tenant(tenant).select_related("customer")
    q = q.strip()
    if q and "@" not in q:
        numbers = {q, f"#{q}"} if not q.startswith("#") else {q, q[1:]}
        found = list(orders.filter(Q(number__in=numbers) | Q(external_id=q)).order_by("-id")[:SEARCH_LIMIT + 1])
        found.sort(key=lambda o: (o.placed_at is not None, o.placed_at or o.created_at, o.pk), reverse=True)
        total = f"{len(found[:SEARCH_LIMIT])} match{'' if len(found) == 1 else 'es'}"
        if len(found) > SEARCH_LIMIT:
            total = f"the newest {SEARCH_LIMIT} matches"
        return Page(found[:SEARCH_LIMIT], None, total)
    if q:
        customers = Customer.objects.for_tenant(tenant).filter(email=q.lower()).values("pk")
        orders = orders.filter(customer__in=customers)
    if status == PLACEHOLDER:
        orders = orders.filter(placed_at__isnull=True)
        total = count_words(orders, "order")
        if after:
            orders = orders.filter(id__lt=cursor_id(decode_cursor(after, 1)[0]))
        rows = list(orders.order_by("-id")[: PAGE_SIZE + 1])
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        return Page(rows, encode_cursor([rows[-1].pk]) if more else None, total)
    orders = orders.filter(placed_at__isnull=False)
    if status:
        orders = orders.filter(status=status)
    zone = zoneinfo.ZoneInfo(tenant.time_zone)
    if date_from:
        orders = orders.filter(placed_at__gte=day_start(date_from, zone))
    if date_to and (end := day_end(date_to, zone)) is not None:
        orders = orders.filter(placed_at__lt=end)
    total = count_words(orders, "order")
    if after:
        placed, last = decode_cursor(after, 2)
        try:
            placed_at = dt.datetime.fromisoformat(placed)
        except (TypeError, ValueError) as exc:
            raise BadListRequest("This page link is damaged: start again from the first page.") from exc
        # placed_at <= :p is the index's range; the tie on the same instant is filtered.
        orders = orders.filter(placed_at__lte=placed_at).exclude(placed_at=placed_at, id__gte=cursor_id(last))
    rows = list(orders.order_by("-placed_at", "-id")[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return Page(rows, encode_cursor([rows[-1].placed_at.isoformat(), rows[-1].pk]) if more else None, total)


@workspace_view()
def order_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    context: dict[str, Any] = {
        "q": q, "status": request.GET.get("status", ""), "status_filters": STATUS_FILTERS,
        "date_from": request.GET.get("from", ""), "date_to": request.GET.get("to", ""),
    }
    template = "workspace/orders/list.html"
    try:
        status = request.GET.get("status", "")
        if status and status not in STATUS_FILTERS:
            raise BadListRequest(f"Status {status!r} is not one of: {', '.join(STATUS_FILTERS)}.")
        date_from = parse_day(context["date_from"], "From")
        date_to = parse_day(context["date_to"], "To")
        if date_from and date_to and date_from > date_to:
            raise BadListRequest(f"From ({date_from}) is after To ({date_to}): swap them.")
        if len(q) > 254:
            raise BadListRequest("Search for at most 254 characters: an order number, an order id or an email.")
        page = order_page(tenant=tenant, q=q, status=status, date_from=date_from, date_to=date_to,
                          after=request.GET.get("after", ""))
    except BadListRequest as exc:
        return bad_request(request, template, context, str(exc))
    for row in page.rows:
        row.total_text = f"{money_str(row.total, row.currency)} {row.currency}"
        row.refunded_text = f"{money_str(row.refunded_total, row.currency)} {row.currency}" if row.refunded_total else "—"
    filtered = bool(q or status or date_from or date_to)
    return render(request, template, {**context, "page": page, "filtered": filtered, "searching": bool(q),
                                      "first_page": bool(request.GET.get("after"))})


@workspace_view()
def order_detail(request: HttpRequest, tenant: Tenant, order_id: int) -> HttpResponse:
    order = get_object_or_404(
        Order.objects.for_tenant(tenant).select_related("customer").prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.for_tenant(tenant).order_by("position", "pk"))),
        pk=order_id)
    refunds = list(Refund.objects.for_tenant(tenant).filter(order=order).order_by("refunded_at", "pk"))
    events = list(Event.objects.for_tenant(tenant).filter(order=order).order_by("-occurred_at", "-pk")[:ORDER_EVENTS])
    cur = order.currency
    lines = [{"line": line, "total": money_str(line.unit_price * line.quantity, cur),
              "unit": money_str(line.unit_price, cur)} for line in order.lines.all()]
    milestones = [(label, getattr(order, field)) for label, field in (
        ("Placed", "placed_at"), ("Paid", "paid_at"), ("Shipped", "fulfilled_at"), ("Delivered", "delivered_at"),
        ("Cancelled", "cancelled_at"))]
    money = {name: money_str(getattr(order, name), cur) for name in (
        "subtotal", "discount_total", "total", "refunded_total")}
    money["net"] = money_str(order.total - order.refunded_total, cur)
    return render(request, "workspace/orders/detail.html", {
        "order": order, "lines": lines, "refunds": [(r, money_str(r.amount, r.currency)) for r in refunds],
        "events": events, "milestones": milestones, "money": money,
    })


urlpatterns = [
    path("orders/", order_list, name="orders"),
    path("orders/<int:order_id>/", order_detail, name="order"),
]
