"""The event sweep's batch path against its per-event path (lifecycle/events.py).

The same varied stream of events — two stores, journeys with filters, entry policies, holdout,
exits, waits for an anchor and for an event, a loyalty programme with tiers, bonuses and rewards,
referral codes, partial and full refunds, several events of one customer in one batch, and one
poisoned event — goes through the per-event reactions into one set of stores and through the batch
reactions into an identical set. Enrollments, deliveries, ledger entries, accounts, referrals and
the events the reactions appended must come out the same, field by field (ids aside).
"""

import datetime as dt
import logging
import random
from decimal import Decimal

import pytest

from journeys.durations import parse_duration
from journeys.models import Delivery, EmailTemplate, Enrollment, Journey, Step
from lifecycle import clock, events
from lifecycle.inputs import OrderIn, RefundIn
from lifecycle.models import Customer, Event, Order, Tenant
from lifecycle.orders import order_ingest, order_mark
from lifecycle.refunds import refund_record
from lifecycle.timeline import event_append
from loyalty.models import LedgerEntry, LoyaltyAccount, PendingRelease, Reward, Tier
from loyalty.models import Program as LoyaltyProgram
from referrals.models import Program as ReferralProgram
from referrals.models import Referral
from referrals.services import referral_code_add_vanity, referral_code_ensure

pytestmark = pytest.mark.django_db(transaction=True)

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
CUSTOMERS = 14


def _journey(tenant, name, trigger, steps=(("P1D", "after_previous", ""),), **fields) -> Journey:
    journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, name=name, trigger=trigger,
                                                        status=Journey.Status.ACTIVE, **fields)
    template = EmailTemplate.objects.for_tenant(tenant).create(tenant=tenant, name=name, subject=name,
                                                               body="<p>Hi {{ first_name }}</p>")
    for position, (wait, kind, extra) in enumerate(steps, start=1):
        step = Step(tenant=tenant, journey=journey, position=position, wait=parse_duration(wait), wait_kind=kind,
                    template=template)
        if kind == Step.WaitKind.AFTER_ANCHOR:
            step.anchor = extra
        elif kind == Step.WaitKind.UNTIL_EVENT:
            step.wait_event, step.wait_max = extra, parse_duration("P3D")
        step.save()
    return journey


def configure(tenant: Tenant, *, variant: int) -> None:
    """Journeys, a loyalty programme and (first store) a referral programme."""
    _journey(tenant, "Thank you", Journey.Trigger.ORDER_PAID, steps=(("PT1H", "after_previous", ""),
                                                                     ("P3D", "after_previous", "")),
             exit_events=["order.refunded"], holdout_percent=25, priority=5)
    _journey(tenant, "First order", Journey.Trigger.FIRST_ORDER, entry_policy=Journey.EntryPolicy.ONCE_PER_CUSTOMER,
             filters={"min_total": "25"})
    _journey(tenant, "Repeat", Journey.Trigger.REPEAT_ORDER, entry_policy=Journey.EntryPolicy.COOLDOWN,
             cooldown=dt.timedelta(days=30), replace_running=True, exit_events=["order.placed", "order.paid"])
    _journey(tenant, "After delivery", Journey.Trigger.ORDER_PAID,
             steps=(("P2D", "after_anchor", "delivered_at"),), exit_events=["order.cancelled"])
    _journey(tenant, "Review", Journey.Trigger.ORDER_DELIVERED, filters={"consent": "required"},
             exit_events=["order.refunded"])
    _journey(tenant, "Support follow-up", Journey.Trigger.CUSTOM, custom_event_type="support.contacted",
             steps=(("P1D", "until_event", "feedback.answered"),), entry_policy=Journey.EntryPolicy.ONCE_PER_CUSTOMER)
    _journey(tenant, "Refund care", Journey.Trigger.ORDER_REFUNDED, filters={"skus": ["GRINDER"]})
    _journey(tenant, "Unhappy", Journey.Trigger.FEEDBACK_NEGATIVE, filters={"locales": ["de"]})
    _journey(tenant, "Thanks for the praise", Journey.Trigger.FEEDBACK_POSITIVE, steps=())
    program = LoyaltyProgram.objects.for_tenant(tenant).create(
        tenant=tenant, pending_days=14 if variant == 0 else 0, first_order_bonus=50, review_bonus=25,
        event_bonuses={"feedback.answered": 10, "support.contacted": 5},
        tier_basis=LoyaltyProgram.TierBasis.POINTS if variant == 0 else LoyaltyProgram.TierBasis.SPEND)
    Tier.objects.for_tenant(tenant).create(tenant=tenant, program=program, name="Silver", threshold=60,
                                           multiplier=Decimal("1.5"))
    Tier.objects.for_tenant(tenant).create(tenant=tenant, program=program, name="Gold", threshold=200,
                                           multiplier=Decimal("2"))
    for cost in (20, 70):
        Reward.objects.for_tenant(tenant).create(tenant=tenant, program=program, name=f"{cost} off",
                                                 kind="fixed_discount", cost=cost, value=5, currency="EUR")
    if variant == 0:
        ReferralProgram.objects.for_tenant(tenant).create(tenant=tenant, store_url="https://shop.example/",
                                                          currency="EUR", advocate_reward_amount="10",
                                                          friend_reward_amount="5")


def order(tenant, rng: random.Random, n: int, customer: int, at: dt.datetime, **extra) -> Order:
    total = rng.choice(["12.00", "30.00", "48.50", "90.00"])
    sku = rng.choice(["BEANS", "GRINDER"])
    body = {"external_id": f"o{n}", "number": f"#{n}", "currency": "EUR", "status": "paid", "total": total,
            "placed_at": at.isoformat(), "paid_at": at.isoformat(), **extra,
            "customer": {"external_id": f"c{customer}", "email": f"c{customer}@example.org", "first_name": "Ada",
                         "locale": "de-DE" if customer % 3 else "en-GB", "marketing_consent": customer % 4 != 0},
            "lines": [{"sku": sku, "title": sku.title(), "quantity": 1, "unit_price": total}]}
    return order_ingest(tenant=tenant, data=OrderIn.model_validate(body)).order


def stream(tenant: Tenant, *, seed: int, phase: int) -> None:
    """One phase of the store's life: orders, shipping, refunds, answers, support contacts."""
    rng = random.Random(seed * 100 + phase)
    base = T0 + dt.timedelta(days=10 * phase)
    for c in range(CUSTOMERS):
        for k in range(rng.choice([0, 1, 1, 2])):
            at = base + dt.timedelta(hours=c + 3 * k)
            extra = {}
            if phase == 0 and c in (1, 2) and tenant.slug.endswith("0"):
                extra = {"referral_code": "COFFEE"} if c == 1 else {"landing_site": "/?ref=COFFEE"}
            placed = order(tenant, rng, f"{phase}{c}{k}", c, at, **extra)
            if rng.random() < 0.8:
                order_mark(tenant=tenant, external_id=placed.external_id, milestone="fulfilled",
                           at=at + dt.timedelta(days=1))
            if rng.random() < 0.6:
                order_mark(tenant=tenant, external_id=placed.external_id, milestone="delivered",
                           at=at + dt.timedelta(days=2))
            roll = rng.random()
            if roll < 0.15:
                refund_record(tenant=tenant, order_external_id=placed.external_id, data=RefundIn(
                    external_id=f"r{placed.external_id}", amount=placed.total, refunded_at=at + dt.timedelta(days=3)))
            elif roll < 0.3:
                refund_record(tenant=tenant, order_external_id=placed.external_id, data=RefundIn(
                    external_id=f"r{placed.external_id}", amount=Decimal("5.00"), refunded_at=at + dt.timedelta(days=3)))
            elif roll < 0.35:
                order_mark(tenant=tenant, external_id=placed.external_id, milestone="cancelled",
                           at=at + dt.timedelta(hours=2))
        customer = Customer.objects.for_tenant(tenant).filter(external_id=f"c{c}").first()
        if customer is None:
            continue
        for _ in range(rng.choice([0, 1, 2])):
            kind = rng.choice(["feedback.answered", "feedback.negative", "feedback.positive", "support.contacted",
                               "review.approved"])
            data = {"review_id": rng.randrange(1, 4)} if kind == "review.approved" else {"score": rng.randrange(11)}
            event_append(tenant=tenant, type=kind, occurred_at=base + dt.timedelta(hours=c, minutes=30),
                         customer=customer, data=data)


def poison(tenant: Tenant) -> Event:
    """An `order.paid` event for an order that was never paid: the first-order journey's query
    cannot compare with a missing payment time, so the event fails every time it is handled."""
    customer = Customer.objects.for_tenant(tenant).get(external_id="c5")
    unpaid = Order.objects.for_tenant(tenant).create(tenant=tenant, external_id="unpaid", currency="EUR",
                                                      customer=customer, total=Decimal("40"), placed_at=T0)
    return event_append(tenant=tenant, type="order.paid", occurred_at=T0, customer=customer, order=unpaid)


def build(prefix: str, *, seed: int) -> list[Tenant]:
    tenants = []
    for variant in (0, 1):
        tenant = Tenant.objects.create(slug=f"{prefix}-{variant}", name=f"{prefix} {variant}", currency="EUR")
        configure(tenant, variant=variant)
        tenants.append(tenant)
    return tenants


def drain(*, batch: bool, limit: int) -> None:
    for _ in range(200):
        if not events.events_process_pending(limit=limit, batch=batch):
            return
    raise AssertionError("the sweep did not drain the events")


def run(prefix: str, *, batch: bool, seed: int = 7) -> list[Tenant]:
    tenants = build(prefix, seed=seed)
    for phase in range(3):
        for tenant in tenants:
            stream(tenant, seed=seed, phase=phase)
            if phase == 0:
                advocate = Customer.objects.for_tenant(tenant).filter(external_id="c0").first()
                if advocate is not None and tenant.slug.endswith("0"):
                    referral_code_add_vanity(tenant=tenant, customer=advocate, code="COFFEE")
                    referral_code_ensure(tenant=tenant, customer=advocate)
            if phase == 1:
                poison(tenant)
        drain(batch=batch, limit=37)  # batches that cut through customers' runs of events
    return tenants


def _event_key(event: Event | None, ordinal: dict[int, int]) -> tuple | None:
    if event is None:
        return None
    return (event.type, event.customer.external_id if event.customer else None,
            event.order.external_id if event.order else None, ordinal[event.pk])


def snapshot(tenant: Tenant) -> dict[str, list]:
    """Everything the reactions wrote for the store, ids and wall-clock times aside."""
    all_events = list(Event.all_tenants.filter(tenant=tenant).select_related("customer", "order").order_by("pk"))
    ordinal: dict[int, int] = {}
    seen: dict[tuple, int] = {}
    for event in all_events:
        key = (event.type, event.customer_id, event.order_id, str(sorted((event.data or {}).items())))
        ordinal[event.pk] = seen[key] = seen.get(key, -1) + 1
    by_pk = {e.pk: e for e in all_events}

    def source(entry: LedgerEntry) -> str:
        kind, _, rest = entry.source.partition(":")
        pk, _, tail = rest.partition(":")
        if kind in ("order", "refund", "cancel"):
            return f"{kind}:{Order.all_tenants.get(pk=pk).external_id}:{tail}"
        if kind == "event":
            return f"event:{_event_key(by_pk[int(rest)], ordinal)}"
        if kind == "bonus":
            return f"bonus:{LedgerEntry.all_tenants.get(pk=pk).source}"
        return entry.source

    enrollments = {e.pk: (e.journey.name, e.customer.external_id, e.order.external_id if e.order else None,
                          _event_key(by_pk.get(e.trigger_event_id), ordinal))
                   for e in Enrollment.all_tenants.filter(tenant=tenant).select_related("journey", "customer", "order")}
    return {
        "enrollments": sorted(
            (*enrollments[e.pk], e.state, e.reason, e.enrolled_at, e.ended_at)
            for e in Enrollment.all_tenants.filter(tenant=tenant)),
        "deliveries": sorted(
            (enrollments[d.enrollment_id], d.step.position, d.customer.external_id, d.state, d.reason, d.due_at,
             d.waiting_for, d.wait_deadline, d.message_class, d.priority,
             [(h["state"], h["reason"], h["at"]) for h in d.history])
            for d in Delivery.all_tenants.filter(tenant=tenant).select_related("step", "customer")),
        "ledger": sorted(
            (e.customer.external_id, e.kind, source(e), e.reason, e.amount, e.points, e.pending_points, e.debt_points,
             e.order.external_id if e.order else None, e.rate, e.base_amount, e.currency, e.available_at,
             e.created_at)
            for e in LedgerEntry.all_tenants.filter(tenant=tenant).select_related("customer", "order")),
        "pending_releases": sorted((r.entry.source.split(":")[0], r.entry.customer.external_id, r.release_at)
                                   for r in PendingRelease.all_tenants.filter(tenant=tenant)
                                   .select_related("entry__customer")),
        "accounts": sorted(
            (a.customer.external_id, a.balance, a.pending, a.debt, a.lifetime_earned, a.tier.name if a.tier else None,
             a.last_activity_at)
            for a in LoyaltyAccount.all_tenants.filter(tenant=tenant).select_related("customer", "tier")),
        "referrals": sorted(
            (r.code.code, r.advocate.external_id, r.friend.external_id, r.order.external_id, r.carrier, r.state,
             r.reason, str(r.flags), r.order_total)
            for r in Referral.all_tenants.filter(tenant=tenant).select_related("code", "advocate", "friend", "order")),
        "events": sorted(
            (*_event_key(e, ordinal), e.processed_at is not None, e.process_attempts) for e in all_events),
    }


@pytest.fixture
def holdout_by_name(monkeypatch):
    """The holdout draw hashes the journey's and the customer's ids, which differ between the two
    sets of stores: draw it from ids both sets share (the journey's name, the customer's number),
    with the same function, so a customer is held out of a journey in both sets or in neither."""
    from journeys import enrollment, enrollment_batch

    real = enrollment.in_holdout
    names: dict[str, int] = {}

    def in_holdout(journey, customer_id):
        number = int(Customer.all_tenants.get(pk=customer_id).external_id[1:])
        same = Journey(pk=names.setdefault(journey.name, len(names) + 1), holdout_percent=journey.holdout_percent)
        return real(same, number)

    monkeypatch.setattr(enrollment, "in_holdout", in_holdout)
    monkeypatch.setattr(enrollment_batch, "in_holdout", in_holdout)


def test_the_batch_path_writes_what_the_per_event_path_writes(caplog, holdout_by_name):
    with clock.frozen(T0 + dt.timedelta(days=40)):
        one_by_one = run("single", batch=False)
        with caplog.at_level(logging.INFO, logger="lifecycle.events"):
            batched = run("batch", batch=True)
    fallbacks = [r for r in caplog.records if "failed as a batch" in r.getMessage()]
    for reference, candidate in zip(one_by_one, batched, strict=True):
        expected, got = snapshot(reference), snapshot(candidate)
        assert expected["enrollments"], "the stream enrolled nobody: nothing is compared"
        for table in expected:
            assert got[table] == expected[table], f"{candidate.slug}: {table} differ"
        states = {row[4] for row in expected["enrollments"]}
        assert {"active", "rejected", "holdout", "exited", "completed"} <= states, states
        kinds = {row[1] for row in expected["ledger"]}
        assert {"earn", "clawback"} <= kinds, kinds
        assert [row for row in expected["events"] if row[-1]] == [("order.paid", "c5", "unpaid", 0, True, 5)]
    assert {row[5] for row in snapshot(one_by_one[0])["referrals"]} >= {"converted"}
    assert {row[3] for row in snapshot(one_by_one[0])["deliveries"]} >= {"waiting", "pending", "skipped"}
    # The batch path really ran as batches: only the rounds holding the poisoned event fell back.
    assert 1 <= len(fallbacks) <= 2 * 2 * events.MAX_ATTEMPTS, len(fallbacks)


def test_a_failing_event_is_retried_alone_and_the_rest_of_its_batch_goes_through(caplog):
    with clock.frozen(T0):
        tenant = Tenant.objects.create(slug="poisoned", name="Poisoned", currency="EUR")
        _journey(tenant, "Thank you", Journey.Trigger.ORDER_PAID)
        _journey(tenant, "First order", Journey.Trigger.FIRST_ORDER)
        LoyaltyProgram.objects.for_tenant(tenant).create(tenant=tenant, pending_days=0)
        rng = random.Random(1)
        paid = [order(tenant, rng, n, n, T0 - dt.timedelta(hours=n)) for n in range(6)]
        bad = poison(tenant)  # customer c5's second event: the batch's second round
        with caplog.at_level(logging.INFO, logger="lifecycle.events"):
            assert events.events_process_pending() == 6 * 3 + 1  # customer.created, order.placed, order.paid; the poisoned
    fine = Event.all_tenants.filter(tenant=tenant).exclude(pk=bad.pk)
    assert fine.filter(processed_at__isnull=True).count() == 0
    assert set(fine.values_list("process_attempts", flat=True)) == {0}
    bad.refresh_from_db()
    assert (bad.processed_at, bad.process_attempts) == (None, 1)
    thanks = Enrollment.all_tenants.filter(tenant=tenant, journey__name="Thank you")
    assert sorted(thanks.values_list("order__external_id", flat=True)) == sorted(o.external_id for o in paid)
    assert LedgerEntry.all_tenants.filter(tenant=tenant, kind="earn").count() == 6
    assert [r.getMessage() for r in caplog.records if "failed as a batch" in r.getMessage()] == [
        "a round of 1 events failed as a batch; handling them one by one"]

    for attempt in range(2, events.MAX_ATTEMPTS + 1):
        assert events.events_process_pending() == 1
        bad.refresh_from_db()
        assert bad.process_attempts == attempt
    assert bad.processed_at is not None
    assert events.events_process_pending() == 0
    # Nothing of the poisoned event stayed, and nothing else was handled twice.
    assert not Enrollment.all_tenants.filter(trigger_event=bad).exists()
    assert thanks.count() == 6 and Delivery.all_tenants.filter(tenant=tenant).count() == 6 + Enrollment.all_tenants.filter(
        tenant=tenant, journey__name="First order", state="active").count()
    assert LedgerEntry.all_tenants.filter(tenant=tenant, kind="earn").count() == 6
