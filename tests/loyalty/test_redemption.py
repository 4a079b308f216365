"""Redeeming: points and a unique code in one transaction; racing redemptions never overdraw."""

import threading

import pytest
from django.db import connection

from lifecycle import clock
from loyalty.models import CodeWebhook, LedgerEntry, Redemption, Reward, RewardCode
from loyalty.redemptions import code_webhook_send, redemption_create
from loyalty.services import InsufficientPoints, points_award

from .helpers import NOW, account, customer, paid_order, program, reward, sums


def _funded(api, tenant, points=100):
    prog = program(tenant, pending_days=0)
    with clock.frozen(NOW):
        paid_order(api, total=f"{points}.00")
    return prog


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_redemptions_on_one_balance_only_the_one_that_fits_succeeds(api, tenant):
    prog = _funded(api, tenant, 100)
    gift = reward(tenant, prog, cost=80)
    c = customer(tenant)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def redeem(n: int) -> None:
        try:
            barrier.wait()
            redemption_create(tenant=tenant, customer=c, reward=gift, source=f"race:{n}")
            outcomes.append("ok")
        except InsufficientPoints:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused"]
    assert sums(tenant) == (20, 0, 0)
    assert Redemption.objects.for_tenant(tenant).count() == 1
    assert LedgerEntry.objects.for_tenant(tenant).filter(kind="redeem").count() == 1


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_redemptions_spend_exactly_what_fits_and_take_distinct_pool_codes(api, tenant):
    prog = _funded(api, tenant, 100)
    gift = reward(tenant, prog, cost=30, code_source=Reward.CodeSource.POOL)
    RewardCode.objects.for_tenant(tenant).bulk_create(
        [RewardCode(tenant=tenant, reward=gift, code=f"POOL-{n}") for n in range(10)])
    c = customer(tenant)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def redeem(n: int) -> None:
        try:
            barrier.wait()
            redemption_create(tenant=tenant, customer=c, reward=gift, source=f"race:{n}")
            outcomes.append("ok")
        except InsufficientPoints:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 3 and outcomes.count("refused") == 3
    assert sums(tenant) == (10, 0, 0)
    codes = list(Redemption.objects.for_tenant(tenant).values_list("code", flat=True))
    assert len(set(codes)) == 3 and all(code.startswith("POOL-") for code in codes)
    assert RewardCode.objects.for_tenant(tenant).filter(redemption__isnull=False).count() == 3


@pytest.mark.django_db
def test_redemption_api_issues_a_code_and_refuses_what_the_balance_does_not_cover(api, tenant):
    prog = _funded(api, tenant, 100)
    gift = reward(tenant, prog, cost=80)
    with clock.frozen(NOW):
        first = api.post("/api/v1/customers/c1/redemptions", {"reward_id": gift.pk}, headers={"Idempotency-Key": "k1"})
        again = api.post("/api/v1/customers/c1/redemptions", {"reward_id": gift.pk}, headers={"Idempotency-Key": "k1"})
        second = api.post("/api/v1/customers/c1/redemptions", {"reward_id": gift.pk})
    assert first.status_code == 201
    body = first.json()
    assert body["code"].startswith("ACME-") and body["points"] == 80 and body["balance"] == 20
    assert body["state"] == "issued"
    assert again.status_code == 201 and again.json() == body and again["Idempotent-Replayed"] == "true"
    assert second.status_code == 409
    assert second.json()["code"] == "loyalty.insufficient_points"
    assert sums(tenant) == (20, 0, 0)


@pytest.mark.django_db
def test_an_empty_code_pool_refuses_and_debits_nothing(api, tenant):
    prog = _funded(api, tenant, 100)
    gift = reward(tenant, prog, cost=50, code_source=Reward.CodeSource.POOL)
    response = api.post("/api/v1/customers/c1/redemptions", {"reward_id": gift.pk})
    assert response.status_code == 409 and response.json()["code"] == "loyalty.out_of_codes"
    assert sums(tenant) == (100, 0, 0)
    assert LedgerEntry.objects.for_tenant(tenant).filter(kind="redeem").count() == 0

    upload = api.post(f"/api/v1/loyalty/rewards/{gift.pk}/codes", {"codes": ["A1", "A2", "A1", " "]})
    assert upload.status_code == 200 and upload.json() == {"added": 2, "available": 2}
    assert api.post(f"/api/v1/loyalty/rewards/{gift.pk}/codes", {"codes": ["A2", "A3"]}).json() == {
        "added": 1, "available": 3}
    response = api.post("/api/v1/customers/c1/redemptions", {"reward_id": gift.pk})
    assert response.status_code == 201 and response.json()["code"] == "A1"


@pytest.mark.django_db
def test_a_generated_code_goes_to_the_store_webhook_signed(api, tenant):
    prog = _funded(api, tenant, 100)
    prog.code_webhook_url, prog.code_webhook_secret = "https://store.example.com/hooks/codes", "s3cret"
    prog.save()
    gift = reward(tenant, prog, cost=50)
    sent = []

    def fake_post():
        sent.append(1)
        return 503 if len(sent) == 1 else 200

    from unittest import mock

    with mock.patch("loyalty.tasks.send_code_webhook.delay"):
        response = api.post("/api/v1/customers/c1/redemptions", {"reward_id": gift.pk})
    assert response.json()["state"] == "awaiting_store"
    hook = CodeWebhook.objects.for_tenant(tenant).get()
    assert hook.payload["code"] == response.json()["code"] and hook.payload["customer_external_id"] == "c1"
    assert code_webhook_send(webhook_id=hook.pk, post=fake_post) == "pending"  # 503: retried later
    assert code_webhook_send(webhook_id=hook.pk, post=fake_post) == "sent"
    assert code_webhook_send(webhook_id=hook.pk, post=fake_post) == ""  # sent once
    assert Redemption.objects.for_tenant(tenant).get().state == "issued"


@pytest.mark.django_db
def test_loyalty_api_shows_balance_pending_tier_history_and_rewards(api, tenant):
    from .helpers import tier

    prog = program(tenant)
    tier(tenant, prog, "Silver", "50", "1.5")
    tier(tenant, prog, "Gold", "500", "2")
    reward(tenant, prog, cost=80)
    with clock.frozen(NOW):
        paid_order(api)
        points_award(tenant=tenant, customer=customer(tenant), points=30, source="welcome", reason="Welcome")
        body = api.get("/api/v1/customers/c1/loyalty").json()
    assert body["balance"] == 30 and body["pending"] == 100 and body["debt"] == 0
    assert body["tier"] == {"name": "Silver", "next_tier": "Gold", "basis": "points", "qualifying": "130",
                            "next_threshold": "500", "remaining": "370", "percent": 26}
    assert [(e["kind"], e["amount"]) for e in body["history"]] == [("earn", 30), ("earn", 100)]
    assert [(r["cost"], r["affordable"]) for r in body["rewards"]] == [(80, False)]
    assert api.get("/api/v1/customers/nobody/loyalty").status_code == 404
    assert account(tenant).tier.name == "Silver"
