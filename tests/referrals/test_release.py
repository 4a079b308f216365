"""Converted → rewarded after the release delay, both sides, exactly once; a refund or cancel first rejects."""

import datetime as dt

import pytest

from lifecycle import clock
from lifecycle.inputs import RefundIn
from lifecycle.models import Event
from lifecycle.orders import order_mark
from lifecycle.refunds import refund_record
from referrals.models import Click, Referral, Reward
from referrals.services import referrals_release_due
from tests.journeys.helpers import process_events

from .helpers import (
    T0,
    click,
    friend,
    make_advocate,
    make_program,
    post_order,
    referral_for,
    rewards,
    run_sweep,
)

pytestmark = pytest.mark.django_db
DAY = dt.timedelta(days=1)


def converted(api, tenant, store, **program):
    make_program(tenant, store=store, **program)
    with clock.frozen(T0):
        code = make_advocate(api, tenant)
        assert click(f"/r/acme/{code.code.lower()}").status_code == 302
        post_order(api, external_id="F-1", customer=friend(), referral_code=code.code)
        process_events()
    return code


def test_link_clicked_friend_orders_and_30_days_later_both_are_rewarded_exactly_once(api, tenant, store):
    code = converted(api, tenant, store)
    referral = referral_for(tenant, "F-1")
    assert (referral.state, referral.carrier, referral.flags) == ("converted", "api_field", [])
    assert referral.release_at == T0 + 30 * DAY
    assert Click.objects.for_tenant(tenant).filter(code=code, by_advocate=False).count() == 1

    assert run_sweep(T0 + 30 * DAY - dt.timedelta(seconds=1)) == 0
    assert rewards(tenant) == [] and store.requests == []

    assert run_sweep(T0 + 30 * DAY) == 1
    assert rewards(tenant) == [("advocate", "discount_code", "10.0000", "issued"),
                               ("friend", "discount_code", "5.0000", "issued")]
    sent = sorted(store.requests, key=lambda r: r["json"]["side"])
    assert [(r["json"]["side"], r["json"]["amount"], r["json"]["currency"], r["json"]["customer"]["external_id"])
            for r in sent] == [("advocate", "10.00", "EUR", "adv-1"), ("friend", "5.00", "EUR", "fr-1")]
    assert all(r["headers"]["Idempotency-Key"] == f"referral-reward-{r['json']['reward_id']}" for r in sent)
    assert sent[0]["json"]["code"].startswith("THANKS-") and sent[1]["json"]["code"].startswith("WELCOME-")
    referral.refresh_from_db()
    assert (referral.state, referral.rewarded_at) == ("rewarded", T0 + 30 * DAY)
    assert sorted(Event.objects.for_tenant(tenant).filter(type="referral.rewarded")
                  .values_list("data__side", "customer__external_id")) == [("advocate", "adv-1"), ("friend", "fr-1")]

    # Replays: the sweep again, the release again, the events again: nothing more.
    assert run_sweep(T0 + 31 * DAY) == 0
    with clock.frozen(T0 + 31 * DAY):
        assert referrals_release_due() == 0
        Event.objects.for_tenant(tenant).update(processed_at=None)
        process_events()
    assert Reward.objects.for_tenant(tenant).count() == 2 and len(store.requests) == 2
    assert Referral.objects.for_tenant(tenant).count() == 1


def test_converted_event_says_when_the_reward_unlocks(api, tenant, store):
    converted(api, tenant, store)
    event = Event.objects.for_tenant(tenant).get(type="referral.converted")
    assert event.customer.external_id == "adv-1"
    assert event.data["reward_unlocks_on"] == "2026-12-02"
    assert event.data["friend_first_name"] == "Bea"


def test_refund_before_release_rejects_with_the_reason_and_nothing_is_rewarded(api, tenant, store):
    converted(api, tenant, store)
    with clock.frozen(T0 + 10 * DAY):
        refund_record(tenant=tenant, order_external_id="F-1", data=RefundIn(external_id="r1", amount="59.90",
                                                                             reason="did not like it"))
        process_events()
    referral = referral_for(tenant, "F-1")
    assert referral.state == "rejected"
    assert referral.reason == "order refunded before the reward was released (59.90 of 59.90 EUR)"
    assert run_sweep(T0 + 40 * DAY) == 0
    assert rewards(tenant) == [] and store.requests == []
    assert Event.objects.for_tenant(tenant).filter(type="referral.rejected").count() == 1


def test_partial_refund_that_leaves_a_qualifying_order_keeps_the_referral(api, tenant, store):
    converted(api, tenant, store, min_order_total="20")
    with clock.frozen(T0 + DAY):
        refund_record(tenant=tenant, order_external_id="F-1", data=RefundIn(external_id="r1", amount="15.00"))
        process_events()
    assert referral_for(tenant, "F-1").state == "converted"
    with clock.frozen(T0 + 2 * DAY):
        refund_record(tenant=tenant, order_external_id="F-1", data=RefundIn(external_id="r2", amount="30.00"))
        process_events()
    referral = referral_for(tenant, "F-1")
    assert (referral.state, referral.reason) == ("rejected",
                                                 "order refunded before the reward was released (45.00 of 59.90 EUR)")


def test_cancel_before_release_rejects(api, tenant, store):
    converted(api, tenant, store)
    with clock.frozen(T0 + DAY):
        order_mark(tenant=tenant, external_id="F-1", milestone="cancelled", reason="fraud")
        process_events()
    referral = referral_for(tenant, "F-1")
    assert (referral.state, referral.reason) == ("rejected", "order cancelled before the reward was released")
    assert run_sweep(T0 + 31 * DAY) == 0 and rewards(tenant) == []


def test_refund_after_release_changes_nothing(api, tenant, store):
    converted(api, tenant, store)
    run_sweep(T0 + 30 * DAY)
    with clock.frozen(T0 + 31 * DAY):
        refund_record(tenant=tenant, order_external_id="F-1", data=RefundIn(external_id="r1", amount="59.90"))
        process_events()
    assert referral_for(tenant, "F-1").state == "rewarded"
    assert [state for *_, state in rewards(tenant)] == ["issued", "issued"]


def test_a_refund_whose_event_was_not_handled_yet_still_blocks_the_release(api, tenant, store):
    converted(api, tenant, store)
    with clock.frozen(T0 + 29 * DAY):
        refund_record(tenant=tenant, order_external_id="F-1", data=RefundIn(external_id="r1", amount="59.90"))
    assert run_sweep(T0 + 30 * DAY) == 1  # taken, and rejected under the lock
    referral = referral_for(tenant, "F-1")
    assert (referral.state, referral.reason) == ("rejected", "order refunded before the reward was released")
    assert rewards(tenant) == []


def test_advocate_tiers_pay_more_from_the_third_friend(api, tenant, store):
    make_program(tenant, store=store, friend_reward_amount="0", advocate_monthly_cap=0)
    with clock.frozen(T0):
        code = make_advocate(api, tenant)
        for n in range(1, 5):
            post_order(api, external_id=f"F-{n}", customer=friend(f"fr-{n}", f"friend{n}@example.org"),
                       referral_code=code.code)
        process_events()
    run_sweep(T0 + 30 * DAY)
    assert sorted(str(r.amount) for r in Reward.objects.for_tenant(tenant)) == ["10.0000", "10.0000", "15.0000",
                                                                              "15.0000"]


def test_monthly_cap_records_the_advocate_reward_as_capped(api, tenant, store):
    make_program(tenant, store=store, advocate_monthly_cap=1, max_conversions_per_advocate_per_day=10)
    with clock.frozen(T0):
        code = make_advocate(api, tenant)
        for n in (1, 2):
            post_order(api, external_id=f"F-{n}", customer=friend(f"fr-{n}", f"friend{n}@example.org"),
                       referral_code=code.code)
        process_events()
    run_sweep(T0 + 30 * DAY)
    advocate = Reward.objects.for_tenant(tenant).filter(side="advocate").order_by("pk")
    assert [(r.state, r.last_error) for r in advocate] == [("issued", ""), ("capped", "monthly cap of 1 reached")]
    assert Reward.objects.for_tenant(tenant).filter(side="friend", state="issued").count() == 2
    assert len(store.requests) == 3


def test_store_errors_retry_only_when_transient(api, tenant, store):
    converted(api, tenant, store, friend_reward_amount="0")
    store.statuses = [503]
    run_sweep(T0 + 30 * DAY)
    reward = Reward.objects.for_tenant(tenant).get()
    assert (reward.state, reward.attempts, reward.last_error) == ("pending", 1, "retrying: HTTP 503")
    assert reward.next_attempt_at == T0 + 30 * DAY + dt.timedelta(seconds=30)
    run_sweep(T0 + 30 * DAY + dt.timedelta(seconds=10))  # not due yet
    assert len(store.requests) == 1
    run_sweep(T0 + 30 * DAY + dt.timedelta(seconds=30))
    reward.refresh_from_db()
    assert (reward.state, reward.attempts, reward.last_error) == ("issued", 2, "")
    assert [r["json"]["reward_id"] for r in store.requests] == [reward.pk, reward.pk]


def test_store_refusal_fails_the_reward_without_retrying(api, tenant, store):
    converted(api, tenant, store, friend_reward_amount="0")
    store.statuses = [422]
    run_sweep(T0 + 30 * DAY)
    run_sweep(T0 + 31 * DAY)
    reward = Reward.objects.for_tenant(tenant).get()
    assert (reward.state, reward.attempts, reward.last_error) == ("failed", 1, "HTTP 422")
    assert len(store.requests) == 1


def test_unreachable_store_is_transient(api, tenant, store):
    converted(api, tenant, store, friend_reward_amount="0", reward_webhook_url="http://127.0.0.1:9/rewards")
    run_sweep(T0 + 30 * DAY)
    reward = Reward.objects.for_tenant(tenant).get()
    assert reward.state == "pending" and reward.last_error.startswith("retrying: ")


def test_points_reward_goes_through_loyalty(api, tenant, store):
    loyalty = pytest.importorskip("loyalty.services", reason="loyalty app not present")
    if not hasattr(loyalty, "points_award"):
        pytest.skip("loyalty.services.points_award is not there yet")
    from loyalty.models import LedgerEntry

    converted(api, tenant, store, advocate_reward_kind="points", advocate_reward_amount="500",
              friend_reward_amount="0")
    run_sweep(T0 + 30 * DAY)
    run_sweep(T0 + 31 * DAY)
    reward = Reward.objects.for_tenant(tenant).get()
    assert (reward.kind, reward.state) == ("points", "issued")
    entries = LedgerEntry.objects.for_tenant(tenant).filter(source=f"referral-reward:{reward.pk}")
    assert [(e.points, e.account.customer.external_id) for e in entries] == [(500, "adv-1")]
    assert store.requests == []
