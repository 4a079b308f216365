"""Settings → Import & export: a checked upload (dry run) then the import, a rejected file's report, exports
streamed as CSV that import back, one customer's data as JSON from their page and the API; roles and audit."""

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from lifecycle.models import Customer, Event, Membership, Order
from tests.lifecycle.test_csv_import import CUSTOMERS, ORDERS
from tests.workspace.program_objects import pending_review

from .conftest import client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_owner(tenant):
    return client_for(make_user("olivia", tenant, Membership.Role.OWNER))


def url(tenant, name="settings-data", **kwargs):
    return reverse(f"workspace:{name}", kwargs={"tenant": tenant.slug, **kwargs})


def upload(text, name="file.csv"):
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def streamed(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_check_then_import_customers(as_marketer, tenant):
    checked = as_marketer.post(url(tenant), {"kind": "customers", "action": "check", "file": upload(CUSTOMERS)})
    assert checked.status_code == 200
    body = checked.content.decode()
    assert "3 rows, 3 customers: <strong>3 new</strong>, 0 updated, 0 unchanged." in body
    assert not Customer.objects.for_tenant(tenant).exists()
    token = body.split('name="token" value="')[1].split('"')[0]
    done = as_marketer.post(url(tenant), {"kind": "customers", "token": token})
    assert done.status_code == 302
    assert Customer.objects.for_tenant(tenant).count() == 3
    assert "Imported 3 customers: 3 new, 0 updated, 0 unchanged." in as_marketer.get(url(tenant)).content.decode()
    # The token is spent: posting it again imports nothing twice and says so.
    again = as_marketer.post(url(tenant), {"kind": "customers", "token": token})
    assert again.status_code == 400 and "no longer here" in again.content.decode()
    assert [e.data["created"] for e in Event.objects.for_tenant(tenant).filter(type="store.customers_imported")] == [3]


def test_a_rejected_file_lists_each_row_and_writes_nothing(as_marketer, tenant):
    response = as_marketer.post(url(tenant), {"kind": "orders", "action": "import",
                                              "file": upload(ORDERS + "O-9,,c9,c9@example.com,,EUR,paid,,abc,,,,\n")})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Nothing was imported: 1 row to fix" in body and "<td>5</td>" in body and "total:" in body
    assert not Order.objects.for_tenant(tenant).exists() and not Customer.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "pets"}, "Choose what the file holds: customers or orders."),
    ({"kind": "customers"}, "Choose a CSV file to upload."),
    ({"kind": "customers", "token": "forged"}, "no longer here"),
])
def test_bad_posts_are_a_400_with_what_to_do(as_owner, tenant, data, message):
    response = as_owner.post(url(tenant), data)
    assert response.status_code == 400 and message in response.content.decode()


def test_exports_stream_csv_that_imports_back(as_owner, tenant, other_tenant):
    from lifecycle.csv_import import csv_import
    csv_import(tenant=tenant, kind="orders", data=ORDERS.encode(), dry_run=False, by="o")
    customers = streamed(as_owner.get(url(tenant), {"export": "customers"}))
    assert customers[0][:3] == ["customer_id", "email", "first_name"]
    assert sorted(row[1] for row in customers[1:]) == ["ada@example.com", "grace@example.com"]
    orders = as_owner.get(url(tenant), {"export": "orders"})
    assert orders["Content-Type"] == "text/csv; charset=utf-8"
    rows = streamed(orders)
    assert [(r[0], r[16]) for r in rows[1:]] == [("O-1", "beans"), ("O-2", "beans"), ("O-2", "filter")]
    # Round trip into another store: the same orders.
    text = "\n".join(",".join(f'"{c}"' for c in row) for row in rows) + "\n"
    report = csv_import(tenant=other_tenant, kind="orders", data=text.encode(), dry_run=False, by="o")
    assert (report.rejected, report.created) == ([], 2)
    assert [e.data for e in Event.objects.for_tenant(tenant).filter(type="store.data_exported").order_by("pk")] == [
        {"what": "customers", "by": "olivia"}, {"what": "orders", "by": "olivia"}]
    assert as_owner.get(url(tenant), {"export": "secrets"}).status_code == 400


def test_review_export_neutralises_spreadsheet_formulas(as_owner, tenant, a_customer):
    order = Order.objects.for_tenant(tenant).get(external_id="A-1")
    pending_review(tenant, customer=a_customer, order=order, title="=HYPERLINK(\"http://evil\")")
    rows = streamed(as_owner.get(url(tenant), {"export": "reviews"}))
    assert rows[1][6] == "'=HYPERLINK(\"http://evil\")" and rows[1][5] == "4"
    assert streamed(as_owner.get(url(tenant), {"export": "answers"}))[0][0] == "answer_id"


def test_gdpr_export_from_the_customer_page_and_the_api(as_marketer, as_viewer, tenant, a_customer, api):
    path = url(tenant, "customer-export", customer_id=a_customer.pk)
    assert as_viewer.post(path).status_code == 403
    assert as_marketer.get(path).status_code == 302  # a GET exports nothing
    assert not Event.objects.for_tenant(tenant).filter(type="store.customer_exported").exists()
    response = as_marketer.post(path)
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["customer"]["email"] == "ada@a-store.example.com" and "tenant_id" not in data["customer"]
    assert [o["external_id"] for o in data["orders"]] == ["A-1"]
    assert {e["type"] for e in data["timeline"]} >= {"order.paid"}
    assert set(data) >= {"loyalty_ledger", "reviews", "survey_answers", "referrals_made", "emails"}
    by_api = api.get("/api/v1/customers/A-C/export")
    assert by_api.status_code == 200 and by_api.json()["customer"]["external_id"] == "A-C"
    assert api.get("/api/v1/customers/nobody/export").status_code == 404
    exported = Event.objects.for_tenant(tenant).filter(type="store.customer_exported").order_by("pk")
    assert [e.data["by"] for e in exported][0] == "mara" and exported[1].data["by"].startswith("api key lc_")


def test_viewers_cannot_open_import_or_export(as_viewer, tenant):
    assert as_viewer.get(url(tenant)).status_code == 403
    assert as_viewer.get(url(tenant), {"export": "customers"}).status_code == 403
    assert as_viewer.post(url(tenant), {"kind": "customers", "file": upload(CUSTOMERS)}).status_code == 403
    assert not Customer.objects.for_tenant(tenant).exists()
    assert not Event.objects.for_tenant(tenant).filter(type="store.data_exported").exists()
