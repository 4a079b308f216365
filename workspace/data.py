"""Settings → Import & export: the store's data in and out.

- Import customers or past orders from CSV (lifecycle/csv_import.py): the upload is checked first (a dry run:
  what would be created, updated or left, and every rejected row with its line and why), kept for an hour in
  the cache under the store's key, and imported whole, or not at all, when the person confirms.
- Export customers, orders (one row per line), reviews and survey answers as CSV, streamed; the customer and
  order files have the import's columns, so an export imports back.
- One customer's data as JSON (GDPR), from the customer's page (`customer_export`) and the API.

Marketers and owners import and export (viewers are refused: an export is every customer's personal data).
Every import and export is a line in the audit log."""

import csv
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from feedback.models import Review, SurveyResponse
from journeys.personal_data import customer_export_record, customer_personal_data
from lifecycle import clock
from lifecycle.csv_import import (
    CUSTOMER_COLUMNS,
    EXPORT_ONLY,
    KINDS,
    MAX_BYTES,
    ORDER_COLUMNS,
    FileRefused,
    ImportReport,
    csv_import,
)
from lifecycle.models import Customer, Membership, Order, OrderLine, Tenant
from lifecycle.tenancy import tenant_scope
from lifecycle.timeline import event_append
from workspace.access import workspace_view
from workspace.customers import object_action, refuse_write

from .program_forms import changed_by

MARKETER = Membership.Role.MARKETER
UPLOAD_SECONDS = 3600  # a checked file waits this long for its "Import" click
EXPORTS = {"customers": "Customers", "orders": "Orders (a row per line)", "reviews": "Reviews",
           "answers": "Survey answers"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell as a formula
CHUNK = 1000


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def csv_stream(tenant: Tenant, header: Iterable[str], rows: Callable[[], Iterable[Iterable[Any]]]) -> Iterator[str]:
    """CSV lines of `rows()`, read inside the store's scope: the response streams after the view has returned."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    with tenant_scope(tenant):
        for row in rows():
            yield writer.writerow([_cell(v) for v in row])


def _customers(tenant: Tenant):
    fields = ("external_id", "email", "first_name", "last_name", "locale", "time_zone", "marketing_consent",
              *EXPORT_ONLY)
    return Customer.objects.for_tenant(tenant).filter(erased_at__isnull=True).order_by("pk").values_list(
        *fields).iterator(chunk_size=CHUNK)


def _orders(tenant: Tenant):
    """One row per line (an order without lines: one row with empty line columns), in the import's columns.
    Orders are read by primary key in chunks, each chunk's lines in one query."""
    after = 0
    while True:
        orders = list(Order.objects.for_tenant(tenant).filter(pk__gt=after).select_related("customer")
                      .order_by("pk")[:CHUNK])
        if not orders:
            return
        after = orders[-1].pk
        lines: dict[int, list[OrderLine]] = {}
        for line in (OrderLine.objects.for_tenant(tenant).filter(order_id__in=[o.pk for o in orders])
                     .order_by("pk")):
            lines.setdefault(line.order_id, []).append(line)
        for order in orders:
            customer = order.customer
            head = [order.external_id, order.number, customer.external_id if customer else "",
                    customer.email if customer else "", customer.first_name if customer else "",
                    customer.last_name if customer else "", "", order.currency, order.status, order.placed_at,
                    order.paid_at, order.fulfilled_at, order.delivered_at, order.cancelled_at, order.total,
                    order.discount_total]
            own = lines.get(order.pk, [])
            if not own:
                yield [*head, "", "", "", "", ""]
            for line in own:
                yield [*head, line.product_external_id, line.sku, line.title,
                       line.quantity, line.unit_price]


REVIEW_HEADER = ("review_id", "product_id", "product_title", "customer_id", "email", "rating", "title", "body",
                 "status", "verified_purchase", "store_reply", "created_at")
ANSWER_HEADER = ("answer_id", "survey", "kind", "customer_id", "email", "order_id", "product_id", "score", "category",
                 "comment", "answered_at")


def _reviews(tenant: Tenant):
    return Review.objects.for_tenant(tenant).order_by("pk").values_list(
        "pk", "product__external_id", "product__title", "customer__external_id", "customer__email", "rating", "title",
        "body", "status", "verified_purchase", "store_reply", "created_at").iterator(chunk_size=CHUNK)


def _answers(tenant: Tenant):
    return SurveyResponse.objects.for_tenant(tenant).order_by("pk").values_list(
        "pk", "survey__name", "survey__kind", "customer__external_id", "customer__email", "order__external_id",
        "product__external_id", "score", "category", "comment", "answered_at").iterator(chunk_size=CHUNK)


EXPORT_ROWS = {
    "customers": (("customer_id", *CUSTOMER_COLUMNS[1:], *EXPORT_ONLY), _customers),
    "orders": (ORDER_COLUMNS, _orders),
    "reviews": (REVIEW_HEADER, _reviews),
    "answers": (ANSWER_HEADER, _answers),
}


def _upload_key(tenant: Tenant, token: str) -> str:
    return f"t:{tenant.pk}:imports:{token}"  # cache keys carry their tenant


def _page(request: HttpRequest, tenant: Tenant, *, status: int = 200, report: ImportReport | None = None,
          token: str = "", error: str = "", kind: str = "") -> HttpResponse:
    return render(request, "workspace/settings/data.html", {
        "section": "data", "exports": EXPORTS, "kinds": KINDS, "report": report, "token": token, "error": error,
        "kind": kind, "customer_columns": CUSTOMER_COLUMNS, "order_columns": ORDER_COLUMNS,
        "max_mb": MAX_BYTES // 1_048_576, "read_only_note": "a marketer or an owner imports and exports."},
        status=status)


@workspace_view(write_role=MARKETER, read_role=MARKETER)
def data(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """GET: the page, or `?export=<what>` streams that CSV. POST: check an upload (a dry run), or import one."""
    if request.method != "POST":
        what = request.GET.get("export", "")
        if not what:
            return _page(request, tenant)
        if what not in EXPORT_ROWS:
            return _page(request, tenant, status=400, error=f"There is no export called {what!r}: choose one from "
                                                            "the list.")
        header, rows = EXPORT_ROWS[what]
        event_append(tenant=tenant, type="store.data_exported", occurred_at=clock.now(),
                     data={"what": what, "by": changed_by(request)})
        response = StreamingHttpResponse(csv_stream(tenant, header, lambda: rows(tenant)),
                                         content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (f'attachment; filename="{tenant.slug}-{what}-'
                                           f'{clock.now():%Y-%m-%d}.csv"')
        return response
    kind = request.POST.get("kind", "")
    if kind not in KINDS:
        return _page(request, tenant, status=400, error="Choose what the file holds: customers or orders.")
    token = request.POST.get("token", "")
    if token:  # the confirmed import of a checked upload
        payload = cache.get(_upload_key(tenant, token)) if len(token) < 100 else None
        if payload is None or payload[0] != kind:
            return _page(request, tenant, status=400, kind=kind,
                         error="This checked file is no longer here (after an hour it is forgotten): upload it again.")
        content, dry_run = payload[1], False
    else:
        upload = request.FILES.get("file")
        if upload is None:
            return _page(request, tenant, status=400, kind=kind, error="Choose a CSV file to upload.")
        if upload.size > MAX_BYTES:
            return _page(request, tenant, status=400, kind=kind, error=f"The file is {upload.size / 1_048_576:.1f} MB; "
                         f"at most {MAX_BYTES // 1_048_576} MB at a time: split it, or use the bulk API.")
        content, dry_run = upload.read(), request.POST.get("action") != "import"
    try:
        report = csv_import(tenant=tenant, kind=kind, data=content, dry_run=dry_run, by=changed_by(request))
    except FileRefused as exc:
        return _page(request, tenant, status=400, kind=kind, error=exc.message)
    if report.rejected:
        return _page(request, tenant, status=400, kind=kind, report=report)
    if report.written:
        if token:
            cache.delete(_upload_key(tenant, token))
        messages.success(request, f"Imported {report.records} {kind}: {report.created} new, {report.updated} "
                                  f"updated, {report.unchanged} unchanged.")
        return redirect("workspace:settings-data", tenant=tenant.slug)
    token = secrets.token_urlsafe(24)
    cache.set(_upload_key(tenant, token), (kind, content), UPLOAD_SECONDS)
    return _page(request, tenant, kind=kind, report=report, token=token)


@object_action(write_role=MARKETER)
def customer_export(request: HttpRequest, tenant: Tenant, customer_id: int) -> HttpResponse:
    """One customer's data as a JSON download (GDPR). A POST: taking someone's data is recorded in the audit log."""
    customer = get_object_or_404(Customer.objects.for_tenant(tenant), pk=customer_id)
    if request.method != "POST":
        return redirect("workspace:customer", tenant=tenant.slug, customer_id=customer.pk)
    if (refused := refuse_write(request)) is not None:
        return refused
    if customer.erased_at is not None:
        messages.info(request, "This customer was erased: there is no personal data left to export.")
        return redirect("workspace:customer", tenant=tenant.slug, customer_id=customer.pk)
    exported = customer_personal_data(tenant=tenant, customer=customer)
    customer_export_record(tenant=tenant, customer=customer, by=changed_by(request))
    response = JsonResponse(exported, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{tenant.slug}-customer-{customer.pk}.json"'
    return response


urlpatterns = [
    path("settings/data/", data, name="settings-data"),
    path("customers/<int:customer_id>/export/", customer_export, name="customer-export"),
]
