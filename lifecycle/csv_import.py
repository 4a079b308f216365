"""CSV import of a store's customers and past orders: the workspace's upload and `manage.py import_csv`.

A file is read whole, every row checked, and then either written whole or not at all: a file with one rejected
row writes nothing, and the report names each rejected row (its line in the file, the header being line 1) and
why. A dry run does everything an import does inside a transaction that is rolled back, so its counts are what
the import would do. Rows are found by their external id (else email, for customers), so importing a file twice
changes nothing the second time.

Orders go through lifecycle/bulk.py's `orders_bulk_ingest` as history (`backfill`): their events fill the
timeline exactly as the bulk API's do, and start no journeys. An order's lines are its rows sharing an order_id.
"""

import csv
import dataclasses
import io
from collections.abc import Callable
from typing import Any

import pydantic
from django.db import transaction

from . import clock
from .api.errors import pydantic_fields
from .bulk import BATCH_SIZE, orders_bulk_ingest
from .customers import customer_import
from .errors import ServiceError
from .inputs import CustomerIn, OrderIn
from .models import Customer, Tenant
from .numbers import whole_number
from .timeline import event_append

KINDS = ("customers", "orders")
IMPORTED = {"customers": "store.customers_imported", "orders": "store.orders_imported"}
MAX_BYTES = 20 * 1024 * 1024  # ~100,000 order lines: larger histories go through the bulk API or the command
CUSTOMER_COLUMNS = ("customer_id", "email", "first_name", "last_name", "locale", "time_zone", "marketing_consent")
ORDER_COLUMNS = ("order_id", "number", "customer_id", "email", "first_name", "last_name", "marketing_consent",
                 "currency", "status", "placed_at", "paid_at", "fulfilled_at", "delivered_at", "cancelled_at",
                 "total", "discount_total", "product_id", "sku", "title", "quantity", "unit_price")
REQUIRED = {"customers": (), "orders": ("order_id", "currency", "total")}
# What the workspace's customer export adds after the import's columns: read past, so an export imports back.
EXPORT_ONLY = ("order_count", "first_order_at", "last_order_at", "unsubscribed_at", "created_at")
ORDER_FIELDS = ("number", "customer_id", "email", "first_name", "last_name", "marketing_consent", "currency", "status",
                "placed_at", "paid_at", "fulfilled_at", "delivered_at", "cancelled_at", "total", "discount_total")
LINE_FIELDS = ("product_id", "sku", "title", "quantity", "unit_price")
TRUE, FALSE = {"1", "true", "yes", "y"}, {"0", "false", "no", "n"}
# An API field's path → the CSV column it came from, for the report.
COLUMN_OF = {"external_id": "order_id", "customer.external_id": "customer_id", "customer.email": "email",
             "customer.first_name": "first_name", "customer.last_name": "last_name",
             "customer.marketing_consent": "marketing_consent", "customer.time_zone": "time_zone",
             "customer.locale": "locale", "customer": "customer_id", "body": "row"}
LINE_COLUMN = {"product_external_id": "product_id", "sku": "sku", "title": "title", "quantity": "quantity",
               "unit_price": "unit_price"}


@dataclasses.dataclass(frozen=True)
class Rejected:
    row: int  # the line in the file; the header is 1
    reason: str


@dataclasses.dataclass
class ImportReport:
    kind: str
    rows: int = 0  # data rows read
    records: int = 0  # customers or orders in them
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = dataclasses.field(default_factory=list)
    dry_run: bool = False
    written: bool = False  # True only when an import (not a dry run) wrote the file

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rows": self.rows, "records": self.records, "created": self.created,
                "updated": self.updated, "unchanged": self.unchanged, "dry_run": self.dry_run,
                "written": self.written, "rejected": [dataclasses.asdict(r) for r in self.rejected]}


class FileRefused(ServiceError):
    """The file as a whole cannot be read (not CSV, wrong columns, too big): nothing to report row by row."""

    def __init__(self, message: str):
        super().__init__("imports.bad_file", message)


def _text(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise FileRefused(f"The file is {len(data) / 1_048_576:.1f} MB; at most {MAX_BYTES // 1_048_576} MB at a time: "
                          "split it, or use the bulk API.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"The file is not UTF-8 text (byte {exc.start} cannot be read): save it as “CSV UTF-8” "
                          "and upload it again.") from exc


def _reader(text: str, kind: str) -> csv.DictReader:
    if "\x00" in text:
        raise FileRefused("The file holds NUL bytes: it is not a CSV file.")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    if not header:
        raise FileRefused("The file is empty: its first line must name the columns.")
    allowed = CUSTOMER_COLUMNS if kind == "customers" else ORDER_COLUMNS
    unknown = [name for name in header if name not in allowed and not (kind == "customers" and name in EXPORT_ONLY)]
    if unknown:
        raise FileRefused(f"Unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: the columns are "
                          f"{', '.join(allowed)}.")
    if len(set(header)) != len(header):
        raise FileRefused("A column appears twice in the first line.")
    missing = [name for name in REQUIRED[kind] if name not in header]
    if kind == "customers" and not {"customer_id", "email"} & set(header):
        missing = ["customer_id or email"]
    if missing:
        raise FileRefused(f"Missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}.")
    reader.fieldnames = header
    return reader


def _consent(raw: str) -> bool | None:
    value = raw.strip().lower()
    if not value:
        return None
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"marketing_consent: write yes or no (or leave it empty when unknown), not {raw.strip()!r}")


def _reason(exc: pydantic.ValidationError, columns: dict[str, str]) -> str:
    parts = []
    for path, messages in pydantic_fields(exc).items():
        column = columns.get(path)
        if column is None and path.startswith("lines."):
            column = LINE_COLUMN.get(path.split(".", 2)[-1], path)
        parts.append(f"{column or path}: {messages[0]}")
    return "; ".join(parts)


def _cells(row: dict[str | None, Any]) -> dict[str, str]:
    if row.get(None):
        raise ValueError("more cells than columns: is a value with a comma missing its quotes?")
    return {key: (value or "").strip() for key, value in row.items() if key is not None}


def _customer_in(cells: dict[str, str]) -> CustomerIn:
    return CustomerIn.model_validate({
        "external_id": cells.get("customer_id") or None, "email": cells.get("email") or None,
        "first_name": cells.get("first_name", ""), "last_name": cells.get("last_name", ""),
        "locale": cells.get("locale", ""), "time_zone": cells.get("time_zone", ""),
        "marketing_consent": _consent(cells.get("marketing_consent", ""))})


def parse_customers(text: str) -> tuple[list[tuple[int, CustomerIn]], list[Rejected], int]:
    """(valid rows, rejected rows, rows read). Raises FileRefused for a file that is not the expected CSV."""
    valid, rejected, seen = [], [], {}
    reader = _reader(text, "customers")
    count = 0
    for row in reader:
        count += 1
        line = reader.line_num
        try:
            data = _customer_in(_cells(row))
        except pydantic.ValidationError as exc:
            rejected.append(Rejected(line, _reason(exc, {"external_id": "customer_id", "email": "email",
                                                         "time_zone": "time_zone", "locale": "locale", "body": "row"})))
            continue
        except ValueError as exc:
            rejected.append(Rejected(line, str(exc)))
            continue
        key = data.external_id or data.email
        if key in seen:
            rejected.append(Rejected(line, f"the same customer as line {seen[key]} ({key}): keep one line per customer"))
            continue
        seen[key] = line
        valid.append((line, data))
    return valid, rejected, count


def parse_orders(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[Rejected], int]:
    """(orders as POST /api/v1/orders bodies with their first line, rejected rows, rows read). Rows sharing an
    order_id are that order's lines; its other columns, when repeated, must say the same."""
    reader = _reader(text, "orders")
    orders: dict[str, dict[str, Any]] = {}
    rejected: list[Rejected] = []
    count = 0
    for row in reader:
        count += 1
        line = reader.line_num
        try:
            cells = _cells(row)
            _consent(cells.get("marketing_consent", ""))
        except ValueError as exc:
            rejected.append(Rejected(line, str(exc)))
            continue
        order_id = cells.get("order_id", "")
        if not order_id:
            rejected.append(Rejected(line, "order_id: is empty; every line names its order"))
            continue
        current = orders.get(order_id)
        if current is None:
            current = orders[order_id] = {"line": line, "rows": [], "cells": cells}
        else:
            clash = next((name for name in ORDER_FIELDS if cells.get(name) and current["cells"].get(name)
                          and cells[name] != current["cells"][name]), None)
            if clash:
                rejected.append(Rejected(line, f"{clash}: {cells[clash]!r}, but line {current['line']} of order "
                                               f"{order_id} says {current['cells'][clash]!r}"))
                continue
        current["rows"].append((line, cells))
    valid = []
    for order_id, found in orders.items():
        body = _order_body(order_id, found["cells"], [cells for _, cells in found["rows"]])
        try:
            OrderIn.model_validate(body)
        except pydantic.ValidationError as exc:
            rejected.append(Rejected(found["line"], _reason(exc, COLUMN_OF)))
            continue
        valid.append((found["line"], body))
    rejected.sort(key=lambda r: r.row)
    return valid, rejected, count


def _order_body(order_id: str, first: dict[str, str], rows: list[dict[str, str]]) -> dict[str, Any]:
    customer = {"external_id": first.get("customer_id") or None, "email": first.get("email") or None,
                "first_name": first.get("first_name", ""), "last_name": first.get("last_name", "")}
    consent = _consent(first.get("marketing_consent", ""))
    if consent is not None:
        customer["marketing_consent"] = consent
    body: dict[str, Any] = {"external_id": order_id, "number": first.get("number", ""), "customer": customer,
                            "currency": first.get("currency", ""), "status": first.get("status") or "paid",
                            "total": first.get("total", ""), "discount_total": first.get("discount_total") or "0"}
    for name in ("placed_at", "paid_at", "fulfilled_at", "delivered_at", "cancelled_at"):
        if first.get(name):
            body[name] = first[name]
    body["lines"] = [{"product_external_id": cells.get("product_id", ""), "sku": cells.get("sku", ""),
                      "title": cells.get("title", ""), "quantity": _number(cells.get("quantity", "")),
                      "unit_price": cells.get("unit_price", "")}
                     for cells in rows if any(cells.get(name) for name in LINE_FIELDS)]
    return body


def _number(raw: str) -> Any:
    """A whole number as the API's JSON would carry it; anything else as typed, for OrderIn to refuse with a reason."""
    value = whole_number(raw)
    return raw if value is None else value


class _RollBack(Exception):
    pass


def csv_import(*, tenant: Tenant, kind: str, data: bytes, dry_run: bool, by: str,
               progress: Callable[[int], None] | None = None) -> ImportReport:
    """Check the file and import it whole, or (a dry run, or any rejected row) write nothing. Idempotent by
    external id. A real import appends a `store.customers_imported` / `store.orders_imported` event."""
    if kind not in KINDS:
        raise FileRefused("Choose what the file holds: customers or orders.")
    text = _text(data)
    report = ImportReport(kind=kind, dry_run=dry_run)
    if kind == "customers":
        valid, report.rejected, report.rows = parse_customers(text)
    else:
        valid, report.rejected, report.rows = parse_orders(text)
    report.records = len(valid) + (len(report.rejected) if kind == "customers" else 0)
    if report.rejected:
        return report
    try:
        with transaction.atomic():
            if kind == "customers":
                _write_customers(tenant, valid, report, progress)
            else:
                _write_orders(tenant, valid, report, progress)
            if report.rejected or dry_run:
                raise _RollBack
            event_append(tenant=tenant, type=IMPORTED[kind], occurred_at=clock.now(),
                         data={"rows": report.rows, "created": report.created, "updated": report.updated,
                               "unchanged": report.unchanged, "by": by})
    except _RollBack:
        return report
    report.written = True
    return report


def _write_customers(tenant: Tenant, valid: list[tuple[int, CustomerIn]], report: ImportReport,
                     progress: Callable[[int], None] | None) -> None:
    for n, (_line, data) in enumerate(valid, start=1):
        outcome = customer_import(tenant=tenant, data=data, source=Customer.ConsentSource.IMPORT)
        setattr(report, outcome, getattr(report, outcome) + 1)
        if progress and n % BATCH_SIZE == 0:
            progress(BATCH_SIZE)
    if progress and len(valid) % BATCH_SIZE:
        progress(len(valid) % BATCH_SIZE)


def _write_orders(tenant: Tenant, valid: list[tuple[int, dict[str, Any]]], report: ImportReport,
                  progress: Callable[[int], None] | None) -> None:
    for start in range(0, len(valid), BATCH_SIZE):
        chunk = valid[start:start + BATCH_SIZE]
        result = orders_bulk_ingest(tenant=tenant, items=[body for _, body in chunk], backfill=True)
        report.created += result.created
        report.updated += result.updated
        report.unchanged += result.unchanged
        for item in result.results:
            if item.result == "error":
                report.rejected.append(Rejected(chunk[item.index][0], item.error["message"]))
        if progress:
            progress(len(chunk))
