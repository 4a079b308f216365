"""seed_scale at tiny sizes: exactly the rows asked for, in the right store, consistent with each other."""

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from demo.scale_seed import BACKLOG, STEP_OFFSETS_DAYS
from feedback.models import SurveyRequest, SurveyResponse
from journeys.models import Delivery, Enrollment
from lifecycle.aggregates import refresh_aggregates
from lifecycle.models import Customer, Event, Order, OrderLine, Refund, Tenant
from loyalty.models import LedgerEntry, LoyaltyAccount

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
SIZES = {"customers": 300, "orders": 1500, "deliveries": 3000}


def seed(slug="scale", *, share="0.1", **sizes) -> dict:
    out = io.StringIO()
    sizes = {**SIZES, **sizes}
    call_command("seed_scale", "--tenant", slug, "--customers", str(sizes["customers"]), "--orders",
                 str(sizes["orders"]), "--deliveries", str(sizes["deliveries"]), "--neighbour-share", share,
                 "--now", NOW.isoformat(), "--no-progress", stdout=out)
    return json.loads(out.getvalue())


def counts(tenant) -> dict[str, int]:
    return {model.__name__: model.objects.for_tenant(tenant).count()
            for model in (Customer, Order, OrderLine, Refund, Event, Enrollment, Delivery, LoyaltyAccount,
                          LedgerEntry, SurveyRequest, SurveyResponse)}


def test_the_store_gets_exactly_the_rows_asked_for_and_the_neighbour_a_tenth():
    summary = seed()
    store, neighbour = Tenant.objects.get(slug="scale"), Tenant.objects.get(slug="scale-neighbour")
    assert (summary["tenant_id"], summary["neighbour_id"]) == (store.pk, neighbour.pk)
    mine, theirs = counts(store), counts(neighbour)
    assert (mine["Customer"], mine["Order"], mine["Delivery"]) == (300, 1500, 3000)
    assert (theirs["Customer"], theirs["Order"], theirs["Delivery"]) == (30, 150, 300)
    # The summary's rows are both stores' together.
    for table, model in (("lifecycle_customer", "Customer"), ("journeys_delivery", "Delivery"),
                         ("lifecycle_orderline", "OrderLine"), ("loyalty_ledgerentry", "LedgerEntry")):
        assert summary["rows"][table] == mine[model] + theirs[model] > 0
    assert all(n > 0 for n in mine.values()), mine


def test_every_row_points_at_its_own_stores_rows():
    seed()
    with connection.cursor() as cursor:
        for sql in (
            "SELECT count(*) FROM lifecycle_order o JOIN lifecycle_customer c ON c.id = o.customer_id "
            "WHERE c.tenant_id <> o.tenant_id",
            "SELECT count(*) FROM lifecycle_orderline l JOIN lifecycle_order o ON o.id = l.order_id "
            "JOIN lifecycle_product p ON p.id = l.product_id WHERE o.tenant_id <> l.tenant_id "
            "OR p.tenant_id <> l.tenant_id",
            "SELECT count(*) FROM journeys_enrollment e JOIN lifecycle_order o ON o.id = e.order_id "
            "JOIN journeys_journey j ON j.id = e.journey_id WHERE o.tenant_id <> e.tenant_id "
            "OR j.tenant_id <> e.tenant_id OR o.customer_id <> e.customer_id",
            "SELECT count(*) FROM journeys_delivery d JOIN journeys_enrollment e ON e.id = d.enrollment_id "
            "JOIN journeys_step s ON s.id = d.step_id WHERE e.tenant_id <> d.tenant_id OR s.tenant_id <> d.tenant_id "
            "OR s.journey_id <> d.journey_id OR e.journey_id <> d.journey_id OR e.customer_id <> d.customer_id",
            "SELECT count(*) FROM lifecycle_event v JOIN lifecycle_customer c ON c.id = v.customer_id "
            "WHERE c.tenant_id <> v.tenant_id",
            "SELECT count(*) FROM loyalty_ledgerentry l JOIN loyalty_loyaltyaccount a ON a.id = l.account_id "
            "WHERE a.tenant_id <> l.tenant_id OR a.customer_id <> l.customer_id",
            "SELECT count(*) FROM feedback_surveyresponse r JOIN feedback_surveyrequest q ON q.id = r.request_id "
            "JOIN feedback_survey s ON s.id = r.survey_id WHERE q.tenant_id <> r.tenant_id "
            "OR s.tenant_id <> r.tenant_id OR q.customer_id <> r.customer_id",
        ):
            cursor.execute(sql)
            assert cursor.fetchone()[0] == 0, sql
        # No dangling reference either (the load ran with foreign-key triggers off).
        cursor.execute("SELECT count(*) FROM journeys_delivery d LEFT JOIN journeys_enrollment e "
                       "ON e.id = d.enrollment_id WHERE e.id IS NULL")
        assert cursor.fetchone()[0] == 0


def test_customers_aggregates_are_what_the_application_computes_from_their_orders():
    seed(share="0")
    store = Tenant.objects.get(slug="scale")
    fields = ("pk", "order_count", "first_order_at", "last_order_at", "total_spent")
    seeded = list(Customer.objects.for_tenant(store).order_by("pk").values_list(*fields))
    refresh_aggregates(store, {row[0] for row in seeded})
    assert list(Customer.objects.for_tenant(store).order_by("pk").values_list(*fields)) == seeded
    assert sum(row[1] for row in seeded) == Order.objects.for_tenant(store).filter(
        paid_at__isnull=False, cancelled_at__isnull=True).count()
    assert any(row[1] == 0 for row in seeded) and max(row[1] for row in seeded) >= 10  # skewed, some never ordered
    assert all(c.created_at <= (c.first_order_at or NOW) for c in Customer.objects.for_tenant(store))


def test_orders_status_follows_from_their_timestamps_and_lines_add_up():
    seed(share="0")
    store = Tenant.objects.get(slug="scale")
    orders = list(Order.objects.for_tenant(store).prefetch_related("lines"))
    assert {o.status for o in orders} >= {"delivered", "refunded", "cancelled"}
    for order in orders:
        assert order.status == order.derive_status(), order.external_id
        stamps = [s for s in (order.placed_at, order.paid_at, order.fulfilled_at, order.delivered_at) if s]
        assert stamps == sorted(stamps) and stamps[-1] <= NOW
        assert NOW - dt.timedelta(days=731) <= order.placed_at
        assert not (order.cancelled_at and order.paid_at)
        assert sum(line.quantity * line.unit_price for line in order.lines.all()) == order.subtotal
        assert order.total == order.subtotal - order.discount_total
    refunded = {o.pk for o in orders if o.status == "refunded"}
    assert set(Refund.objects.for_tenant(store).values_list("order_id", flat=True)) == refunded


def test_deliveries_states_agree_with_their_timestamps_and_enrollments():
    seed(share="0")
    store = Tenant.objects.get(slug="scale")
    enrollments = {e.pk: e for e in Enrollment.objects.for_tenant(store)}
    deliveries = list(Delivery.objects.for_tenant(store))
    held = {pk for pk, e in enrollments.items() if e.state == "holdout"}
    assert len(held) == len(enrollments) // 10
    assert not held & {d.enrollment_id for d in deliveries}  # the holdout group gets no email
    states = {}
    for d in deliveries:
        states[d.state] = states.get(d.state, 0) + 1
        enrollment = enrollments[d.enrollment_id]
        if d.state == "sent":
            assert d.due_at <= d.sent_at <= NOW and d.message_id and d.esp_message_id
            assert d.delivered_at is None or d.sent_at <= d.delivered_at
            assert d.opened_at is None or (d.delivered_at and d.delivered_at <= d.opened_at <= NOW)
            assert d.clicked_at is None or (d.opened_at and d.opened_at <= d.clicked_at)
        else:
            assert (d.sent_at, d.delivered_at, d.opened_at, d.clicked_at, d.esp_message_id) == (None, None, None,
                                                                                                None, "")
        if d.state in ("pending", "deferred"):
            assert d.due_at > NOW - BACKLOG and enrollment.state == "active"
        elif not (enrollment.state == "exited" and d.state == "skipped"):
            assert d.due_at <= NOW - BACKLOG
        assert d.due_at - enrollment.enrolled_at in {dt.timedelta(days=n) for n in STEP_OFFSETS_DAYS}
    assert states["sent"] > 0.8 * len(deliveries)
    assert {"skipped", "failed", "pending"} <= set(states)
    due_now = [d for d in deliveries if d.state in ("pending", "deferred") and d.due_at <= NOW]
    assert due_now, "the claim has no work"
    for e in enrollments.values():
        if e.state == "completed":
            assert not any(d.state in ("pending", "deferred") for d in deliveries if d.enrollment_id == e.pk)
    assert all(o.paid_at for o in Order.objects.for_tenant(store).filter(pk__in=[e.order_id for e in
                                                                                 enrollments.values()]))


def test_loyalty_balances_equal_their_ledger_and_answers_answer_requests():
    seed(share="0")
    store = Tenant.objects.get(slug="scale")
    accounts = list(LoyaltyAccount.objects.for_tenant(store))
    assert accounts
    for account in accounts:
        entries = LedgerEntry.objects.for_tenant(store).filter(account=account)
        assert account.balance == sum(e.points for e in entries) >= 0
        assert account.lifetime_earned == sum(e.points for e in entries if e.kind == "earn")
    for response in SurveyResponse.objects.for_tenant(store).select_related("request"):
        assert response.request.asked_at <= response.answered_at <= NOW
        assert response.category == ("negative" if response.score <= 6 else
                                     "positive" if response.score >= 9 else "neutral")


def test_a_second_run_refuses_and_writes_nothing():
    seed()
    store = Tenant.objects.get(slug="scale")
    before = counts(store)
    with pytest.raises(CommandError, match="already has customers"):
        seed(customers=10)
    assert counts(store) == before
    assert Tenant.objects.filter(slug__startswith="scale").count() == 2


def test_the_same_seed_gives_the_same_store():
    seed("one", share="0", customers=50, orders=200, deliveries=300)
    seed("two", share="0", customers=50, orders=200, deliveries=300)

    def fingerprint(slug):
        tenant = Tenant.objects.get(slug=slug)
        return (list(Order.objects.for_tenant(tenant).order_by("pk").values_list("status", "placed_at", "total")),
                list(Customer.objects.for_tenant(tenant).order_by("pk").values_list("email", "marketing_consent")),
                list(Delivery.objects.for_tenant(tenant).order_by("pk").values_list("state", "due_at")))

    assert fingerprint("one") == fingerprint("two")


def test_sqlite_is_refused_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(CommandError, match="PostgreSQL"):
        seed()
    assert not Tenant.objects.filter(slug="scale").exists()


def test_a_seeded_neighbour_is_refused_before_the_store_is_created():
    seed("other", share="0", customers=20, orders=50, deliveries=30)
    Tenant.objects.filter(slug="other").update(slug="fresh-neighbour")
    with pytest.raises(CommandError, match="'fresh-neighbour' already has customers"):
        seed("fresh", customers=20, orders=50, deliveries=30)
    assert not Tenant.objects.filter(slug="fresh").exists()
