"""Tiers on points earned or spend over a rolling 12 months (never the balance); expiry after
inactivity, warned first."""

import datetime as dt
from decimal import Decimal

import pytest

from lifecycle import clock
from lifecycle.models import Event
from loyalty.models import LedgerEntry, Program

from .helpers import NOW, account, expire_at, paid_order, program, refund, reward, sums, tier

pytestmark = pytest.mark.django_db


def tier_events(tenant) -> list[tuple[str, str]]:
    return [(e.type, e.data["tier"]) for e in Event.objects.for_tenant(tenant).filter(
        type__startswith="loyalty.tier").order_by("pk")]


def test_tier_up_applies_its_multiplier_and_spending_points_does_not_cost_the_tier(api, tenant):
    prog = program(tenant, pending_days=0)
    tier(tenant, prog, "Silver", "100", "1.5")
    gift = reward(tenant, prog, cost=100)
    with clock.frozen(NOW):
        paid_order(api, total="100.00")
        assert account(tenant).tier.name == "Silver"
        paid_order(api, external_id="1002", total="100.00")  # earned at Silver's 1.5
        assert sums(tenant) == (250, 0, 0)
        second = LedgerEntry.objects.for_tenant(tenant).get(kind="earn", order__external_id="1002")
        assert (second.amount, second.rate) == (150, Decimal("1.5"))
        assert api.post("/api/v1/customers/c1/redemptions", {"reward_id": gift.pk}).status_code == 201
        assert api.post("/api/v1/customers/c1/redemptions", {"reward_id": gift.pk}).status_code == 201
    acc = account(tenant)
    assert (acc.balance, acc.tier.name) == (50, "Silver")
    assert tier_events(tenant) == [("loyalty.tier_reached", "Silver")]


def test_tier_down_on_refund_and_when_the_rolling_window_moves_on(api, tenant):
    prog = program(tenant, pending_days=0)
    tier(tenant, prog, "Silver", "100")
    tier(tenant, prog, "Gold", "300")
    with clock.frozen(NOW):
        paid_order(api, total="120.00")
        paid_order(api, external_id="1002", total="200.00")
        assert account(tenant).tier.name == "Gold"
        refund(api, order="1002", amount="50.00")  # 270 earned in 12 months: below Gold
        assert account(tenant).tier.name == "Silver"
    expire_at(NOW + dt.timedelta(days=200))
    assert account(tenant).tier.name == "Silver"
    expire_at(NOW + dt.timedelta(days=366))  # the hourly sweep re-qualifies: nothing earned in 12 months
    assert account(tenant).tier is None
    assert tier_events(tenant) == [("loyalty.tier_reached", "Silver"), ("loyalty.tier_reached", "Gold"),
                                   ("loyalty.tier_lost", "Silver"), ("loyalty.tier_lost", "")]


def test_with_the_never_rule_a_tier_once_reached_is_kept(api, tenant):
    prog = program(tenant, pending_days=0, tier_downgrade=Program.Downgrade.NEVER)
    tier(tenant, prog, "Silver", "100")
    with clock.frozen(NOW):
        paid_order(api, total="150.00")
        refund(api, amount="150.00")
    expire_at(NOW + dt.timedelta(days=400))
    assert account(tenant).tier.name == "Silver"


def test_spend_basis_counts_paid_money_net_of_refunds_over_12_months(api, tenant):
    prog = program(tenant, pending_days=0, tier_basis=Program.TierBasis.SPEND, points_per_unit="0.1")
    tier(tenant, prog, "VIP", "500")
    with clock.frozen(NOW):
        paid_order(api, total="300.00")
        paid_order(api, external_id="1002", total="250.00")
        assert account(tenant).tier.name == "VIP"
        assert sums(tenant) == (55, 0, 0)
        refund(api, order="1002", amount="100.00")
        assert account(tenant).tier is None


def test_points_expire_after_inactivity_and_only_after_a_warning(api, tenant):
    program(tenant, pending_days=0, expiry_months=12, expiry_warning_days=30)
    with clock.frozen(NOW):
        paid_order(api, total="100.00")
    expire_at(NOW + dt.timedelta(days=300))
    assert not Event.objects.for_tenant(tenant).filter(type="loyalty.points_expiring").exists()
    expire_at(NOW + dt.timedelta(days=335))  # 30 days before the deadline (365 days)
    warning = Event.objects.for_tenant(tenant).get(type="loyalty.points_expiring")
    assert warning.data == {"points": 100, "expires_at": (NOW + dt.timedelta(days=365)).isoformat()}
    expire_at(NOW + dt.timedelta(days=341))
    assert Event.objects.for_tenant(tenant).filter(type="loyalty.points_expiring").count() == 1  # warned once
    expire_at(NOW + dt.timedelta(days=364))
    assert sums(tenant) == (100, 0, 0)
    expire_at(NOW + dt.timedelta(days=366))
    assert sums(tenant) == (0, 0, 0)
    assert LedgerEntry.objects.for_tenant(tenant).filter(kind="expire").values_list("amount", flat=True)[0] == -100
    expire_at(NOW + dt.timedelta(days=400))
    assert LedgerEntry.objects.for_tenant(tenant).filter(kind="expire").count() == 1


def test_a_warning_late_for_the_deadline_still_gives_the_full_notice(api, tenant):
    prog = program(tenant, pending_days=0)
    with clock.frozen(NOW):
        paid_order(api, total="100.00")
    Program.objects.for_tenant(tenant).filter(pk=prog.pk).update(expiry_months=12, expiry_warning_days=30)
    expire_at(NOW + dt.timedelta(days=500))  # expiry switched on long after: warned now, not expired
    assert Event.objects.for_tenant(tenant).get(type="loyalty.points_expiring").data["expires_at"] == (
        NOW + dt.timedelta(days=530)).isoformat()
    expire_at(NOW + dt.timedelta(days=529))
    assert sums(tenant) == (100, 0, 0)
    expire_at(NOW + dt.timedelta(days=531))
    assert sums(tenant) == (0, 0, 0)


def test_activity_starts_a_new_expiry_period(api, tenant):
    program(tenant, pending_days=0, expiry_months=12, expiry_warning_days=30)
    with clock.frozen(NOW):
        paid_order(api, total="100.00")
    expire_at(NOW + dt.timedelta(days=340))
    with clock.frozen(NOW + dt.timedelta(days=350)):
        paid_order(api, external_id="1002", total="10.00")
    expire_at(NOW + dt.timedelta(days=400))
    assert sums(tenant) == (110, 0, 0)
    assert Event.objects.for_tenant(tenant).filter(type="loyalty.points_expiring").count() == 1


def test_birthday_given_once_on_the_page_earns_the_bonus_once_a_year(api, tenant):
    import re

    from django.test import Client

    from lifecycle.links import make_token

    from .helpers import customer

    program(tenant, pending_days=0, birthday_bonus=30)
    with clock.frozen(NOW):
        paid_order(api, total="10.00")
        url = f"/l/{make_token('loyalty', tenant_id=tenant.pk, customer_id=customer(tenant).pk)}"
        assert 'name="birthday"' in Client().get(url).content.decode()
        assert Client().post(url, {"birthday": "1990-11-25"}).status_code == 200
        assert Client().post(url, {"birthday": "1990-11-21"}).status_code == 200  # not moved to today
        assert Client().post(url, {"birthday": "not a date"}).status_code == 400
        assert not re.search('name="birthday"', Client().get(url).content.decode())
    assert account(tenant).birthday == dt.date(1990, 11, 25)
    expire_at(NOW)
    assert sums(tenant) == (10, 0, 0)
    expire_at(NOW + dt.timedelta(days=4))
    expire_at(NOW + dt.timedelta(days=4, hours=5))
    assert sums(tenant) == (40, 0, 0)
    expire_at(NOW + dt.timedelta(days=369))
    assert sums(tenant) == (70, 0, 0)
    assert list(LedgerEntry.objects.for_tenant(tenant).filter(source__startswith="birthday:").values_list(
        "source", flat=True).order_by("pk")) == ["birthday:2026", "birthday:2027"]
