"""Customers: find one among a million, then see everything that happened to them.

Lists are built for big stores: a page is a keyset query (`WHERE id < :last ORDER BY id DESC
LIMIT 51`), never OFFSET, and every filter and search has an index behind it (the Customer
indexes in lifecycle/models.py). Nothing counts a whole table: up to EXACT_COUNT_LIMIT rows are
counted exactly, past that PostgreSQL's planner estimate is shown as "about N" (SQLite, the
embedded profile, says "more than 1,000").

The customer page reads through workspace/timeline.py; its two actions go through
the existing services (customer_unsubscribe, customer_erase).
"""

import base64
import binascii
import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from lifecycle import jsonbody
from lifecycle.customers import customer_erase, customer_unsubscribe
from lifecycle.models import Customer, Membership, Tenant
from lifecycle.money import money_str
from lifecycle.preferences import Category, categories_off
from workspace import timeline
from workspace.access import SAFE_METHODS, forbidden, role_allows, workspace_view

PAGE_SIZE = 50
# Counted exactly up to here (an index-only count of at most this many rows); beyond, estimated.
EXACT_COUNT_LIMIT = 1_000
CONSENT_FILTERS = {
    "subscribed": ("Subscribed", Q(marketing_consent=True, unsubscribed_at__isnull=True, suppressed_at__isnull=True)),
    "no": ("Declined", Q(marketing_consent=False)),
    "unknown": ("Never asked", Q(marketing_consent__isnull=True)),
    "unsubscribed": ("Unsubscribed", Q(unsubscribed_at__isnull=False)),
    "suppressed": ("Suppressed", Q(suppressed_at__isnull=False)),
}
ORDERED_FILTERS = {
    "yes": ("Has ordered", Q(first_order_at__isnull=False)),
    "no": ("Never ordered", Q(first_order_at__isnull=True)),
}


# --- one object's action: its lookup before the role check ----------------------------


def object_action(*, write_role: str):
    """workspace_view for a POST on one object named in the URL (an owner's erase, revoke, rotate…).

    workspace_view refuses a write below its role before the view runs; here the view looks the
    object up first and calls `refuse_write(request)` after, so another store's id is a 404 for
    every caller, whatever their role here, and a member below `write_role` still gets the 403.
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def checked(request: HttpRequest, tenant: Tenant, *args, **kwargs) -> HttpResponse:
            request.can_write = role_allows(request.role, write_role)
            request.write_role = write_role
            return view(request, tenant, *args, **kwargs)

        wrapped = workspace_view(write_role=Membership.Role.VIEWER)(checked)
        wrapped.workspace_write_role = write_role
        return wrapped

    return decorate


def refuse_write(request: HttpRequest) -> HttpResponse | None:
    """The 403 page for an unsafe method below the view's write role (see object_action), else None."""
    if request.method in SAFE_METHODS or request.can_write:
        return None
    return forbidden(request, f"Your role in {request.tenant.name} is {request.role}: you can look, "
                              f"but this needs {'an owner' if request.write_role == Membership.Role.OWNER else 'a ' + request.write_role}.")


# --- lists: cursors, counts, bad input ------------------------------------------------


class BadListRequest(ValueError):
    """A filter or page link that cannot be read: the page answers 400 with this message."""


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(raw: str, arity: int) -> list[Any]:
    try:
        values = jsonbody.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadListRequest("This page link is damaged: start again from the first page.") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise BadListRequest("This page link is damaged: start again from the first page.")
    return values


def cursor_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadListRequest("This page link is damaged: start again from the first page.")
    return value


def choice(request: HttpRequest, name: str, options: dict[str, Any], label: str) -> str:
    value = request.GET.get(name, "")
    if value and value not in options:
        raise BadListRequest(f"{label} {value!r} is not one of: {', '.join(options)}.")
    return value


def count_words(queryset: QuerySet, noun: str, plural: str = "") -> str:
    """"12 customers", or past EXACT_COUNT_LIMIT "about 1,000,000 customers" (PostgreSQL's estimate)."""
    plural = plural or f"{noun}s"
    exact = queryset.order_by()[: EXACT_COUNT_LIMIT + 1].count()
    if exact <= EXACT_COUNT_LIMIT:
        return f"{exact:,} {noun if exact == 1 else plural}"
    estimate = planner_estimate(queryset)
    if estimate is None or estimate <= EXACT_COUNT_LIMIT:
        return f"more than {EXACT_COUNT_LIMIT:,} {plural}"
    return f"about {round_estimate(estimate):,} {plural}"


def planner_estimate(queryset: QuerySet) -> int | None:
    """The planner's row estimate for the query (EXPLAIN, which reads no rows). PostgreSQL only."""
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def round_estimate(n: int) -> int:
    """Two significant figures: an estimate should not look exact."""
    digits = len(str(n))
    step = 10 ** max(0, digits - 2)
    return round(n / step) * step


@dataclasses.dataclass
class Page:
    rows: list
    next_cursor: str | None
    total: str


def bad_request(request: HttpRequest, template: str, context: dict[str, Any], message: str) -> HttpResponse:
    return render(request, template, {**context, "error": message, "page": None}, status=400)


# --- the customer list ----------------------------------------------------------------


def customer_page(*, tenant: Tenant, q: str = "", consent: str = "", ordered: str = "", after: str = "") -> Page:
    """One page of the tenant's customers: newest first, or by email when searching.

    A search (`q`) matches the email by prefix (emails are stored lower-cased, so the match
    is case-insensitive) or, without an @, also the customer's external id exactly.
    """
    customers = Customer.objects.for_tenant(tenant)
    if consent:
        customers = customers.filter(CONSENT_FILTERS[consent][1])
    if ordered:
        customers = customers.filter(ORDERED_FILTERS[ordered][1])
    q = q.strip()
    if q:
        match = Q(email__prefix=q.lower())  # starts_with(): an index range under row-level security too
        if "@" not in q:
            match |= Q(external_id=q)
        customers = customers.filter(match)
        total = count_words(customers, "match", "matches")
        if after:
            email, last = decode_cursor(after, 2)
            if not isinstance(email, str):
                raise BadListRequest("This page link is damaged: start again from the first page.")
            # email >= :e is the index's range; the tie on the same email is filtered.
            customers = customers.filter(email__gte=email).exclude(email=email, id__lte=cursor_id(last))
        rows = list(customers.order_by("email", "id")[: PAGE_SIZE + 1])
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        return Page(rows, encode_cursor([rows[-1].email, rows[-1].pk]) if more else None, total)
    total = count_words(customers, "customer")
    if after:
        customers = customers.filter(id__lt=cursor_id(decode_cursor(after, 1)[0]))
    rows = list(customers.order_by("-id")[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return Page(rows, encode_cursor([rows[-1].pk]) if more else None, total)


@workspace_view()
def customer_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    context: dict[str, Any] = {
        "q": q, "consent_filters": {k: v[0] for k, v in CONSENT_FILTERS.items()},
        "ordered_filters": {k: v[0] for k, v in ORDERED_FILTERS.items()},
        "consent": request.GET.get("consent", ""), "ordered": request.GET.get("ordered", ""),
    }
    template = "workspace/customers/list.html"
    try:
        consent = choice(request, "consent", CONSENT_FILTERS, "Consent")
        ordered = choice(request, "ordered", ORDERED_FILTERS, "Orders")
        if len(q) > 254:
            raise BadListRequest("Search for at most 254 characters: an email address or a customer id.")
        page = customer_page(tenant=tenant, q=q, consent=consent, ordered=ordered, after=request.GET.get("after", ""))
    except BadListRequest as exc:
        return bad_request(request, template, context, str(exc))
    for row in page.rows:
        row.spent_text = f"{money_str(row.total_spent, tenant.currency)} {tenant.currency}"
    filtered = bool(q or context["consent"] or context["ordered"])
    return render(request, template, {**context, "page": page, "filtered": filtered,
                                      "first_page": bool(request.GET.get("after"))})


# --- the customer page ------------------------------------------------------------------


@workspace_view()
def customer_detail(request: HttpRequest, tenant: Tenant, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(Customer.objects.for_tenant(tenant), pk=customer_id)
    return _render_customer(request, tenant, customer)


def _render_customer(request: HttpRequest, tenant: Tenant, customer: Customer, *, status: int = 200,
                     erase_error: str = "", unsubscribe_error: str = "") -> HttpResponse:
    before = request.GET.get("before", "")
    try:
        items = timeline.timeline_page(tenant=tenant, customer=customer, before=before)
    except timeline.BadCursor:
        items = timeline.timeline_page(tenant=tenant, customer=customer)
        status = 400
        messages.error(request, "That timeline link is damaged: showing the newest items instead.")
    context = {
        "customer": customer,
        "value": timeline.lifetime_value(tenant=tenant, customer=customer),
        "health": timeline.health(tenant=tenant, customer=customer),
        "journeys": timeline.journeys(tenant=tenant, customer=customer),
        "loyalty": timeline.loyalty(tenant=tenant, customer=customer),
        "referrals": timeline.referrals(tenant=tenant, customer=customer),
        "timeline": items,
        "showing_older": bool(before) and status == 200,
        "can_erase": request.role == Membership.Role.OWNER,
        "erase_phrase": erase_phrase(customer),
        "erase_error": erase_error,
        "unsubscribe_error": unsubscribe_error,
        "categories_off": [Category(category).label for category in categories_off(customer)],
    }
    return render(request, "workspace/customers/detail.html", context, status=status)


def erase_phrase(customer: Customer) -> str:
    """What the owner types to confirm an erasure: the address itself, so the wrong tab cannot be erased."""
    return customer.email or customer.external_id or f"customer {customer.pk}"


@object_action(write_role=Membership.Role.MARKETER)
def customer_unsubscribe_view(request: HttpRequest, tenant: Tenant, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(Customer.objects.for_tenant(tenant), pk=customer_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    if request.method != "POST":
        return redirect("workspace:customer", tenant=tenant.slug, customer_id=customer.pk)
    if request.POST.get("confirm") != "yes":
        return _render_customer(request, tenant, customer, status=400,
                                unsubscribe_error="Confirm the unsubscribe with its button: nothing was changed.")
    changed = customer_unsubscribe(customer=customer, source=Customer.ConsentSource.ADMIN,
                                   detail=f"by {request.user.get_username()} in the workspace")
    if changed:
        messages.success(request, f"{customer} is unsubscribed from marketing email.")
    else:
        messages.info(request, f"{customer} was already unsubscribed: nothing changed.")
    return redirect("workspace:customer", tenant=tenant.slug, customer_id=customer.pk)


@object_action(write_role=Membership.Role.OWNER)
def customer_erase_view(request: HttpRequest, tenant: Tenant, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(Customer.objects.for_tenant(tenant), pk=customer_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    # The page around the form is the customer page: its buttons follow the marketer's rights.
    request.can_write = role_allows(request.role, Membership.Role.MARKETER)
    if request.method != "POST":
        return redirect("workspace:customer", tenant=tenant.slug, customer_id=customer.pk)
    if customer.erased_at is not None:
        messages.info(request, "This customer was already erased: nothing changed.")
        return redirect("workspace:customer", tenant=tenant.slug, customer_id=customer.pk)
    typed = request.POST.get("confirmation", "").strip()
    phrase = erase_phrase(customer)
    if typed.lower() != phrase.lower():
        return _render_customer(
            request, tenant, customer, status=400,
            erase_error=f"Type {phrase} exactly to confirm{'' if not typed else f' (you typed {typed!r})'}: "
                        "nothing was erased.")
    customer_erase(tenant=tenant, customer_id=customer.pk)
    messages.success(request, "The customer's personal data is erased. Their orders stay, anonymous, and "
                              "nothing will be sent to the address again.")
    return redirect("workspace:customer", tenant=tenant.slug, customer_id=customer.pk)


urlpatterns = [
    path("customers/", customer_list, name="customers"),
    path("customers/<int:customer_id>/", customer_detail, name="customer"),
    path("customers/<int:customer_id>/unsubscribe/", customer_unsubscribe_view, name="customer-unsubscribe"),
    path("customers/<int:customer_id>/erase/", customer_erase_view, name="customer-erase"),
]
