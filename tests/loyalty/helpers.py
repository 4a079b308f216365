"""Loyalty through the real entry points: orders and refunds by API, events processed, sweeps run."""

import datetime as dt
from decimal import Decimal

from lifecycle import clock
from lifecycle.models import Customer
from loyalty.models import LedgerEntry, LoyaltyAccount, Program, Reward, Tier
from loyalty.tasks import expire_points, release_pending
from tests.factories import order_payload
from tests.journeys.helpers import at, process_events

# A weekday morning; the orders below are paid at their placed_at, the day before.
NOW = at("2026-11-21T09:00:00+00:00")
PAID = at("2026-11-20T09:00:00+00:00")


def program(tenant, **fields) -> Program:
    defaults = {"points_per_unit": Decimal("1"), "pending_days": 14}
    return Program.objects.for_tenant(tenant).create(tenant=tenant, **{**defaults, **fields})


def tier(tenant, prog, name, threshold, multiplier="1") -> Tier:
    return Tier.objects.for_tenant(tenant).create(tenant=tenant, program=prog, name=name,
                                                  threshold=Decimal(threshold), multiplier=Decimal(multiplier))


def reward(tenant, prog, cost=80, **fields) -> Reward:
    defaults = {"name": f"{cost} points: 5 EUR off", "kind": Reward.Kind.FIXED_DISCOUNT, "cost": cost,
                "value": Decimal("5"), "currency": "EUR", "code_prefix": "ACME"}
    return Reward.objects.for_tenant(tenant).create(tenant=tenant, program=prog, **{**defaults, **fields})


def paid_order(api, external_id="1001", total="100.00", customer="c1", *, process=True, **overrides) -> dict:
    body = order_payload(external_id=external_id, number=f"#{external_id}", total=total, discount_total="0.00",
                         placed_at=overrides.pop("placed_at", PAID.isoformat()),
                         customer={"external_id": customer, "email": f"{customer}@example.com", "first_name": "Ada",
                                   "marketing_consent": True},
                         **overrides)
    assert api.post("/api/v1/orders", body).status_code in (200, 201)
    if process:
        process_events()
    return body


def refund(api, order="1001", external_id="r1", amount="25.00", *, process=True):
    response = api.post(f"/api/v1/orders/{order}/refunds", {"external_id": external_id, "amount": amount})
    assert response.status_code in (200, 201), response.json()
    if process:
        process_events()
    return response


def customer(tenant, external_id="c1") -> Customer:
    return Customer.objects.for_tenant(tenant).get(external_id=external_id)


def account(tenant, external_id="c1") -> LoyaltyAccount:
    return LoyaltyAccount.objects.for_tenant(tenant).get(customer=customer(tenant, external_id))


def sums(tenant, external_id="c1") -> tuple[int, int, int]:
    a = account(tenant, external_id)
    return a.balance, a.pending, a.debt


def entries(tenant, external_id="c1") -> list[tuple[str, int]]:
    return list(LedgerEntry.objects.for_tenant(tenant).filter(customer=customer(tenant, external_id))
                .order_by("pk").values_list("kind", "amount"))


def release_at(when: dt.datetime) -> int:
    with clock.frozen(when):
        return release_pending()


def expire_at(when: dt.datetime) -> int:
    with clock.frozen(when):
        taken = expire_points()
        process_events()
        return taken
