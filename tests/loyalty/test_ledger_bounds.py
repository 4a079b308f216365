"""Extreme orders the API accepts earn a bounded award and never fail a handler (issue 14, item 6).

Before: `floor(total × rate)` went straight into 32-bit columns, so a 99,999,999,999,999.9999 EUR
order (now above what the API accepts: 999,999,999,999.9999 is the most), or an IDR order over ~2.1 billion at 1 point per unit, raised in the loyalty handler; after
five attempts the `order.paid` event was set aside and its journeys skipped.
"""

from decimal import Decimal

import pytest
from django.core.management import call_command

from lifecycle import clock
from lifecycle.models import Event
from lifecycle.tenants import tenant_create
from loyalty.models import LedgerEntry, LoyaltyAccount, Redemption
from loyalty.services import ORDER_POINTS_MAX, POINTS_COLUMN_MAX
from tests.conftest import Api

from .helpers import NOW, paid_order, program, reward, sums

pytestmark = pytest.mark.django_db


def paid_event(tenant, external_id: str) -> Event:
    return Event.objects.for_tenant(tenant).get(type="order.paid", order__external_id=external_id)


def assert_handled(tenant, external_id: str):
    event = paid_event(tenant, external_id)
    assert event.processed_at is not None and event.process_attempts == 0  # handled first time, not set aside


def ledger_ok(capsys) -> None:
    call_command("check_ledgers", "--no-progress")
    assert capsys.readouterr().out.strip().endswith("mismatches=0")


def test_the_largest_total_the_api_accepts_earns_the_capped_award(api, tenant, capsys):
    program(tenant)
    with clock.frozen(NOW):
        paid_order(api, total="999999999999.9999", lines=[])

    assert_handled(tenant, "1001")
    earn = LedgerEntry.objects.for_tenant(tenant).get(kind="earn")
    assert (earn.amount, earn.pending_points, earn.base_amount) == (
        ORDER_POINTS_MAX, ORDER_POINTS_MAX, Decimal("999999999999.9999"))
    assert sums(tenant) == (0, ORDER_POINTS_MAX, 0)
    ledger_ok(capsys)


def test_an_idr_order_over_two_billion_is_processed_and_earns_the_capped_award(capsys):
    tenant, key = tenant_create(slug="nusa", name="Nusa Kopi", owner_email="owner@nusa.test", currency="IDR",
                                time_zone="Asia/Jakarta")
    program(tenant)
    with clock.frozen(NOW):
        paid_order(Api(key), total="3000000000", currency="IDR", lines=[])

    assert_handled(tenant, "1001")
    assert LedgerEntry.objects.for_tenant(tenant).get(kind="earn").amount == ORDER_POINTS_MAX
    ledger_ok(capsys)


def test_an_account_never_passes_what_its_columns_hold(api, tenant, capsys):
    program(tenant, pending_days=0)
    full = POINTS_COLUMN_MAX // ORDER_POINTS_MAX  # 21 full awards
    with clock.frozen(NOW):
        for n in range(full + 2):
            paid_order(api, external_id=f"B{n}", total="999999999999", lines=[])

    for n in range(full + 2):
        assert_handled(tenant, f"B{n}")
    amounts = list(LedgerEntry.objects.for_tenant(tenant).filter(kind="earn").order_by("pk")
                   .values_list("amount", flat=True))
    # The last award takes what is left; the one after has nothing left to give and writes no entry.
    assert amounts == [ORDER_POINTS_MAX] * full + [POINTS_COLUMN_MAX - full * ORDER_POINTS_MAX]
    account = LoyaltyAccount.objects.for_tenant(tenant).get()
    assert (account.balance, account.pending, account.lifetime_earned) == (POINTS_COLUMN_MAX, 0, POINTS_COLUMN_MAX)
    ledger_ok(capsys)


@pytest.mark.parametrize("reward_id", [True, "1", 1.5])
def test_a_redemption_names_its_reward_by_a_json_integer(api, tenant, reward_id):
    prog = program(tenant, pending_days=0)
    with clock.frozen(NOW):
        paid_order(api, total="100.00")
    gift = reward(tenant, prog, cost=80)
    assert gift.pk >= 1

    with clock.frozen(NOW):
        response = api.post("/api/v1/customers/c1/redemptions", {"reward_id": reward_id})

    assert response.status_code == 400
    assert response.json()["fields"] == {"reward_id": ["must be a whole number"]}
    assert Redemption.objects.for_tenant(tenant).count() == 0 and sums(tenant) == (100, 0, 0)
