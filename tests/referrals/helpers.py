"""Referral scenarios through the real entry points: the orders API, the event outbox, /r/ and the sweep."""

import datetime as dt

from django.test import Client

from lifecycle import clock
from lifecycle.models import Customer, Order
from referrals.models import Program, Referral, ReferralCode, Reward
from referrals.services import referral_code_ensure
from referrals.tasks import sweep
from tests.factories import order_payload
from tests.journeys.helpers import process_events

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"


def make_program(tenant, *, store=None, **fields) -> Program:
    defaults = {"store_url": "https://acme.example.com/", "currency": "EUR", "advocate_reward_amount": "10",
                "friend_reward_amount": "5", "reward_webhook_url": store.url if store else ""}
    return Program.objects.for_tenant(tenant).create(tenant=tenant, **{**defaults, **fields})


def post_order(api, *, external_id, customer, status="paid", placed_at=None, **fields) -> dict:
    fields.setdefault("discount_codes", [])
    body = order_payload(external_id=external_id, number=f"#{external_id}", customer=customer, status=status,
                         placed_at=(placed_at or clock.now()).isoformat(), **fields)
    response = api.post("/api/v1/orders", body)
    assert response.status_code in (200, 201), response.content
    return body


def make_advocate(api, tenant, *, email="ada@example.com", external_id="adv-1", first_name="Ada") -> ReferralCode:
    """A customer with a paid order of their own, and their referral code."""
    post_order(api, external_id=f"{external_id}-o1", customer={"external_id": external_id, "email": email,
                                                                "first_name": first_name, "marketing_consent": True})
    process_events()
    customer = Customer.objects.for_tenant(tenant).get(external_id=external_id)
    return referral_code_ensure(tenant=tenant, customer=customer)


def friend(external_id="fr-1", email="bea@example.org", **extra) -> dict:
    return {"external_id": external_id, "email": email, "first_name": "Bea", **extra}


def click(path: str, *, ip="198.51.100.7", user_agent=BROWSER, method="get"):
    return getattr(Client(), method)(path, REMOTE_ADDR=ip, HTTP_USER_AGENT=user_agent)


def referral_for(tenant, order_external_id) -> Referral:
    return Referral.objects.for_tenant(tenant).get(order=Order.objects.for_tenant(tenant).get(
        external_id=order_external_id))


def rewards(tenant) -> list[tuple[str, str, str, str]]:
    return [(r.side, r.kind, str(r.amount), r.state)
            for r in Reward.objects.for_tenant(tenant).order_by("side", "pk")]


def run_sweep(at: dt.datetime) -> int:
    with clock.frozen(at):
        return sweep()
