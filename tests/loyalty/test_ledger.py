"""Order points: earned pending, released after the return window, clawed back by refunds at the
rate they were earned, never twice for a replay, nothing for a cancelled order."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command

from lifecycle import clock
from lifecycle.models import Event, Order
from loyalty.handlers import on_event
from loyalty.models import LedgerEntry, PendingRelease, Program
from loyalty.services import points_award
from tests.journeys.helpers import process_events

from .helpers import (
    NOW,
    PAID,
    account,
    customer,
    entries,
    paid_order,
    program,
    refund,
    release_at,
    reward,
    sums,
)

pytestmark = pytest.mark.django_db
WINDOW_OVER = PAID + dt.timedelta(days=14, minutes=1)


def ledger_ok(capsys) -> None:
    call_command("check_ledgers", "--no-progress")
    assert capsys.readouterr().out.strip().endswith("mismatches=0")


def test_paid_order_earns_pending_points_that_become_available_after_the_return_window(api, tenant, capsys):
    program(tenant)
    with clock.frozen(NOW):
        paid_order(api)
    assert sums(tenant) == (0, 100, 0)
    earn = LedgerEntry.objects.for_tenant(tenant).get(kind="earn")
    assert (earn.rate, earn.base_amount, earn.currency, earn.source) == (Decimal(1), Decimal(100), "EUR",
                                                                         f"order:{earn.order_id}")
    assert earn.available_at == PAID + dt.timedelta(days=14)

    assert release_at(PAID + dt.timedelta(days=13, hours=23)) == 0
    assert sums(tenant) == (0, 100, 0)
    assert release_at(WINDOW_OVER) == 1
    assert sums(tenant) == (100, 0, 0)
    assert entries(tenant) == [("earn", 100), ("release", 100)]
    assert PendingRelease.objects.for_tenant(tenant).count() == 0
    assert release_at(WINDOW_OVER) == 0  # nothing left to release, nothing written
    assert entries(tenant) == [("earn", 100), ("release", 100)]
    ledger_ok(capsys)


def test_replayed_order_and_replayed_event_award_nothing_more(api, tenant):
    program(tenant, first_order_bonus=50)
    with clock.frozen(NOW):
        body = paid_order(api)
        assert api.post("/api/v1/orders", body).status_code == 200  # the platform's webhook again
        process_events()
        event = Event.objects.for_tenant(tenant).get(type="order.paid")
        on_event(event)
        on_event(event)
        process_events()
    assert entries(tenant) == [("earn", 100), ("earn", 50)]
    assert sums(tenant) == (50, 100, 0)


def test_partial_refunds_take_back_exactly_their_share_and_a_full_refund_the_rest(api, tenant, capsys):
    program(tenant)
    with clock.frozen(NOW):
        paid_order(api, total="59.90")
        assert sums(tenant) == (0, 59, 0)
        refund(api, amount="10.00")  # round(59 × 10 / 59.90) = round(9.85) = 10, from the pending points
        assert sums(tenant) == (0, 49, 0)
        refund(api, amount="10.00")  # replayed refund id: nothing more
        assert sums(tenant) == (0, 49, 0)
    release_at(WINDOW_OVER)
    assert sums(tenant) == (49, 0, 0)
    with clock.frozen(WINDOW_OVER):
        refund(api, external_id="r2", amount="20.00")  # round(19.70) = 20, now from the balance
        assert sums(tenant) == (29, 0, 0)
        refund(api, external_id="r3", amount="29.90")  # completes the order: all that is left, no residue
    assert sums(tenant) == (0, 0, 0)
    assert entries(tenant) == [("earn", 59), ("clawback", -10), ("release", 49), ("clawback", -20), ("clawback", -29)]
    assert sum(a for k, a in entries(tenant) if k in ("earn", "clawback")) == 0
    ledger_ok(capsys)


def test_refund_claws_back_at_the_rate_the_points_were_earned(api, tenant):
    prog = program(tenant, pending_days=0)
    with clock.frozen(NOW):
        paid_order(api)
        Program.objects.for_tenant(tenant).filter(pk=prog.pk).update(points_per_unit=Decimal("10"))
        refund(api, amount="50.00")
    assert sums(tenant) == (50, 0, 0)
    assert LedgerEntry.objects.for_tenant(tenant).get(kind="clawback").rate == Decimal(1)


def test_refunds_recorded_before_the_points_are_earned_are_applied_once(api, tenant):
    program(tenant)
    with clock.frozen(NOW):
        paid_order(api, process=False)
        refund(api, amount="40.00", process=False)
        process_events()
    assert sums(tenant) == (0, 60, 0)
    assert entries(tenant) == [("earn", 100), ("clawback", -40)]


def test_points_already_spent_become_debt_never_a_negative_balance(api, tenant, capsys):
    prog = program(tenant, pending_days=0)
    gift = reward(tenant, prog, cost=80)
    with clock.frozen(NOW):
        paid_order(api)
        response = api.post("/api/v1/customers/c1/redemptions", {"reward_id": gift.pk})
        assert response.status_code == 201, response.json()
        refund(api, amount="100.00")
        assert sums(tenant) == (0, 0, 80)
        paid_order(api, external_id="1002", total="50.00")
    assert sums(tenant) == (0, 0, 30)  # new points repay the debt first
    paid_order(api, external_id="1003", total="45.00")
    assert sums(tenant) == (15, 0, 0)
    ledger_ok(capsys)


def test_a_cancelled_order_earns_nothing_and_cancelling_a_paid_order_takes_its_points_back(api, tenant):
    program(tenant, first_order_bonus=25)
    with clock.frozen(NOW):
        paid_order(api, status="pending")
        assert api.post("/api/v1/orders/1001/cancellation", {"reason": "fraud"}).status_code == 200
        paid_order(api, status="paid")  # paid after it was cancelled: order.paid, but no points
        assert Order.objects.for_tenant(tenant).get(external_id="1001").cancelled_at is not None
        assert LedgerEntry.objects.for_tenant(tenant).count() == 0

        paid_order(api, external_id="1002")
        assert sums(tenant) == (25, 100, 0)
        assert api.post("/api/v1/orders/1002/cancellation", {"reason": "changed mind"}).status_code == 200
        process_events()
    assert sums(tenant) == (0, 0, 0)
    assert entries(tenant) == [("earn", 100), ("earn", 25), ("clawback", -100), ("clawback", -25)]
    assert release_at(WINDOW_OVER) == 1
    assert sums(tenant) == (0, 0, 0)


def test_orders_in_another_currency_and_stores_without_a_program_earn_nothing(api, tenant):
    with clock.frozen(NOW):
        paid_order(api)
        program(tenant)
        paid_order(api, external_id="1002", currency="USD")
    assert LedgerEntry.objects.for_tenant(tenant).count() == 0


def test_review_custom_event_and_award_bonuses_are_once_per_source(api, tenant):
    program(tenant, review_bonus=20, event_bonuses={"survey.completed": 5})
    with clock.frozen(NOW):
        paid_order(api, process=False)
        c = customer(tenant)
        from lifecycle.timeline import event_append

        for _ in range(2):
            event_append(tenant=tenant, type="review.approved", occurred_at=NOW, customer=c, data={"review_id": 7},
                         dedupe_key=None)
        api.post("/api/v1/events", {"type": "survey.completed", "customer": {"external_id": "c1"},
                                    "idempotency_key": "s1"})
        api.post("/api/v1/events", {"type": "survey.completed", "customer": {"external_id": "c1"},
                                    "idempotency_key": "s1"})
        process_events()
        assert points_award(tenant=tenant, customer=c, points=30, source="referral:9", reason="Referral") is not None
        assert points_award(tenant=tenant, customer=c, points=30, source="referral:9", reason="Referral") is None
    assert sorted(LedgerEntry.objects.for_tenant(tenant).values_list("source", "amount")) == sorted(
        [(f"order:{Order.objects.for_tenant(tenant).get().pk}", 100), ("review:7", 20),
         (f"event:{Event.objects.for_tenant(tenant).get(type='survey.completed').pk}", 5), ("referral:9", 30)])
    assert sums(tenant) == (55, 100, 0)


def test_an_erased_customer_forfeits_balance_and_pending(api, tenant, capsys):
    program(tenant, first_order_bonus=10)
    with clock.frozen(NOW):
        paid_order(api)
        assert api.delete("/api/v1/customers/c1").status_code == 204
        process_events()
    acc = LedgerEntry.objects.for_tenant(tenant).first().account
    acc.refresh_from_db()
    assert (acc.balance, acc.pending, acc.debt) == (0, 0, 0)
    assert release_at(WINDOW_OVER) == 1
    acc.refresh_from_db()
    assert acc.balance == 0
    ledger_ok(capsys)


def test_check_ledgers_reports_a_tampered_account(api, tenant, capsys):
    program(tenant)
    with clock.frozen(NOW):
        paid_order(api)
    acc = account(tenant)
    type(acc).objects.for_tenant(tenant).filter(pk=acc.pk).update(pending=99)
    with pytest.raises(SystemExit) as exc:
        call_command("check_ledgers", "--no-progress")
    assert exc.value.code == 1
    out = capsys.readouterr()
    assert out.out.strip() == "customers=1 mismatches=1"
    assert "pending 99 vs 100" in out.err
