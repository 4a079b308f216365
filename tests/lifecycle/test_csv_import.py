"""CSV import of customers and past orders: whole or nothing, each rejected row with its line and why, a dry run
that writes nothing, idempotent by external id, orders written as the bulk API writes history."""

import io
import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from lifecycle.csv_import import FileRefused, csv_import
from lifecycle.models import Customer, Event, Order, OrderLine

pytestmark = pytest.mark.django_db

CUSTOMERS = ("customer_id,email,first_name,last_name,marketing_consent,time_zone\n"
             "c1,ada@example.com,Ada,Lovelace,yes,Europe/London\n"
             "c2,grace@example.com,Grace,Hopper,no,\n"
             ",alan@example.com,Alan,,,\n")
ORDERS = ("order_id,number,customer_id,email,first_name,currency,status,placed_at,total,product_id,title,quantity,"
          "unit_price\n"
          "O-1,#1001,c1,ada@example.com,Ada,EUR,delivered,2025-03-01T10:00:00Z,42.00,beans,House beans,2,21.00\n"
          "O-2,#1002,c2,grace@example.com,Grace,EUR,paid,2025-04-02T09:30:00Z,30.50,beans,House beans,1,21.00\n"
          "O-2,,,,,,,,,filter,Paper filters,1,9.50\n")


def run(tenant, kind, text, dry_run=False):
    return csv_import(tenant=tenant, kind=kind, data=text.encode(), dry_run=dry_run, by="olivia")


def snapshot(tenant):
    return json.dumps([list(Customer.objects.for_tenant(tenant).order_by("pk").values()),
                       list(Order.objects.for_tenant(tenant).order_by("pk").values()),
                       Event.objects.for_tenant(tenant).count()], default=str)


def test_customers_import_and_a_second_import_changes_nothing(tenant):
    report = run(tenant, "customers", CUSTOMERS)
    assert (report.written, report.created, report.updated, report.unchanged, report.rejected) == (True, 3, 0, 0, [])
    ada = Customer.objects.for_tenant(tenant).get(external_id="c1")
    assert (ada.email, ada.first_name, ada.marketing_consent, ada.consent_source, ada.time_zone) == (
        "ada@example.com", "Ada", True, "import", "Europe/London")
    assert Customer.objects.for_tenant(tenant).get(email="alan@example.com").external_id is None
    before = snapshot(tenant)
    again = run(tenant, "customers", CUSTOMERS)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    events = Event.objects.for_tenant(tenant).filter(type="store.customers_imported").order_by("pk")
    assert [e.data for e in events] == [
        {"rows": 3, "created": 3, "updated": 0, "unchanged": 0, "by": "olivia"},
        {"rows": 3, "created": 0, "updated": 0, "unchanged": 3, "by": "olivia"}]
    assert json.loads(snapshot(tenant))[:2] == json.loads(before)[:2]


def test_one_bad_row_rejects_the_file_and_names_every_bad_row(tenant):
    text = (CUSTOMERS + "c4,not-an-email,Bad,,maybe,\n" + "c5,,,,,Mars/Olympus\n" + "c1,ada@example.com,Ada,,,\n"
            + ",,,,,\n")
    report = run(tenant, "customers", text)
    assert report.written is False
    assert [(r.row, r.reason) for r in report.rejected] == [
        (5, "marketing_consent: write yes or no (or leave it empty when unknown), not 'maybe'"),
        (6, "time_zone: 'Mars/Olympus' is not an IANA time zone such as 'Europe/Berlin'"),
        (7, "the same customer as line 2 (c1): keep one line per customer"),
        (8, "row: a customer needs an external_id or an email"),
    ]
    assert not Customer.objects.for_tenant(tenant).exists()
    assert not Event.objects.for_tenant(tenant).exists()


def test_a_dry_run_counts_what_would_happen_and_writes_nothing(tenant):
    run(tenant, "customers", "customer_id,email,first_name\nc1,ada@example.com,Ada\n")
    before = snapshot(tenant)
    report = run(tenant, "customers", CUSTOMERS, dry_run=True)
    assert (report.dry_run, report.written, report.created, report.updated, report.unchanged) == (True, False, 2, 1, 0)
    assert snapshot(tenant) == before


def test_orders_are_imported_as_history_with_their_lines(tenant):
    report = run(tenant, "orders", ORDERS)
    assert (report.written, report.rows, report.records, report.created) == (True, 3, 2, 2)
    two = Order.objects.for_tenant(tenant).get(external_id="O-2")
    assert (two.number, two.total, two.currency, two.status, two.source) == ("#1002", Decimal("30.50"), "EUR", "paid",
                                                                              "import")
    assert list(OrderLine.objects.for_tenant(tenant).filter(order=two).order_by("pk").values_list(
        "product_external_id", "quantity")) == [("beans", 1), ("filter", 1)]
    assert Customer.objects.for_tenant(tenant).get(external_id="c1").order_count == 1
    order_events = Event.objects.for_tenant(tenant).filter(type__startswith="order.")
    assert order_events.exists() and not order_events.filter(backfill=False).exists()  # history: no journeys
    again = run(tenant, "orders", ORDERS)
    assert (again.created, again.unchanged) == (0, 2)
    assert Order.objects.for_tenant(tenant).count() == 2


def test_a_bad_order_rejects_the_file(tenant):
    bad = (ORDERS + "O-3,,c3,c3@example.com,,EURO,paid,,10.00,,,,\n" + "O-2,,,,,,,,99.00,,,,\n"
           + "O-4,,c4,c4@example.com,,EUR,paid,,10.00,beans,Beans,two,10.00\n")
    report = run(tenant, "orders", bad)
    assert [(r.row, r.reason.split(":")[0]) for r in report.rejected] == [(5, "currency"), (6, "total"), (7, "quantity")]
    assert "line 3 of order O-2 says '30.50'" in report.rejected[1].reason
    assert not Order.objects.for_tenant(tenant).exists() and not Customer.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(("data", "message"), [
    (b"", "The file is empty"),
    (b"\xff\xfe\x00c", "The file is not UTF-8 text"),
    (b"customer_id,shoe_size\nc1,42\n", "Unknown column shoe_size: the columns are customer_id, email"),
    (b"first_name\nAda\n", "Missing column: customer_id or email."),
])
def test_a_file_that_is_not_the_expected_csv_is_refused_whole(tenant, data, message):
    with pytest.raises(FileRefused) as refused:
        csv_import(tenant=tenant, kind="customers", data=data, dry_run=False, by="o")
    assert refused.value.message.startswith(message)
    assert not Customer.objects.for_tenant(tenant).exists()


def test_the_command_shows_progress_dry_runs_and_reports_rejected_lines(tenant, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(CUSTOMERS)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_csv", tenant.slug, "customers", str(path), "--dry-run", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["created"] == 3 and "checking customers into" in err.getvalue()
    assert not Customer.objects.for_tenant(tenant).exists()
    call_command("import_csv", tenant.slug, "customers", str(path), "--no-progress", stdout=io.StringIO())
    assert Customer.objects.for_tenant(tenant).count() == 3
    path.write_text(CUSTOMERS + "c9,bad,,,,\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 row\\(s\\) rejected: nothing was imported"):
        call_command("import_csv", tenant.slug, "customers", str(path), "--no-progress", stdout=io.StringIO(),
                     stderr=err)
    assert err.getvalue().startswith("line 5: email: ")
    assert not Customer.objects.for_tenant(tenant).filter(external_id="c9").exists()
