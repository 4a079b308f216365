"""The journey engine under random interleavings (issue 8, item 4): a Hypothesis state machine.

Rules: orders placed, paid, updated, fulfilled, delivered, cancelled and refunded; unsubscribes,
hard bounces (through the real ESP tracking service) and erasures; the event sweep; the clock moved
by hours or days across the 2026 daylight-saving changes of the three customers' time zones
(Europe/Berlin, America/New_York, Australia/Sydney); and the real dispatcher - deliveries_claim,
then deliveries_send with the real gate, rendering and sending through anymail's test backend, as
journeys.tasks.dispatch and journeys.tasks.send do.

Invariants, after every step:
- at most one email per (enrollment, step), and the ESP got exactly the emails the ledger says were sent;
- nothing after the customer's erasure or hard bounce, no marketing after their unsubscribe, nothing
  from a journey after its order was cancelled or refunded (its exit events), nothing from an
  enrollment after it was seen exited;
- nothing inside quiet hours (21:00-08:00) on the customer's wall clock.
"after" is the order in which the machine did things, not the clock (many things happen at one instant).

CI runs max_examples=40 (PROOF_HYPOTHESIS_EXAMPLES overrides it); a failure prints the steps that led to it.
"""

import contextlib
import datetime as dt
import os
import zoneinfo
from decimal import Decimal

import pytest
from anymail.signals import AnymailTrackingEvent
from django.core import mail
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from journeys.dispatch import deliveries_send
from journeys.engagement import esp_event_record
from journeys.models import Delivery, EmailTemplate, Enrollment, Journey, Step
from journeys.schedule import deliveries_claim_by_tenant
from lifecycle import clock
from lifecycle.customers import customer_erase, customer_unsubscribe
from lifecycle.events import events_process_pending
from lifecycle.inputs import OrderIn, RefundIn
from lifecycle.models import Customer, Tenant
from lifecycle.orders import order_ingest, order_mark
from lifecycle.refunds import refund_record
from lifecycle.tenancy import system_scope, tenant_scope

pytestmark = pytest.mark.django_db

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney")
# The 2026 daylight-saving changes of the three zones, in UTC.
DST_CHANGES = [
    dt.datetime(2026, 3, 8, 7, tzinfo=dt.UTC),  # New York springs forward
    dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC),  # Berlin springs forward
    dt.datetime(2026, 4, 4, 16, tzinfo=dt.UTC),  # Sydney falls back (03:00 → 02:00 on 5 April)
    dt.datetime(2026, 10, 3, 16, tzinfo=dt.UTC),  # Sydney springs forward (02:00 → 03:00 on 4 October)
    dt.datetime(2026, 10, 25, 1, tzinfo=dt.UTC),  # Berlin falls back
    dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC),  # New York falls back
]
QUIET_START, QUIET_END = dt.time(21, 0), dt.time(8, 0)
EXITS = ["order.cancelled", "order.refunded"]


def quiet(moment: dt.datetime, zone: str) -> bool:
    wall = moment.astimezone(zoneinfo.ZoneInfo(zone)).time()
    return wall >= QUIET_START or wall < QUIET_END


class JourneyMachine(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self):
        super().__init__()
        self.savepoint = transaction.atomic()
        self.savepoint.__enter__()
        mail.outbox = []
        self.seq = 0
        self.sent: list[dict] = []  # every email the dispatcher reported sent, in order
        self.stopped: dict[tuple[str, int], int] = {}  # ("erased"|"suppressed"|"unsubscribed", customer pk) → seq
        self.order_exits: dict[int, int] = {}  # order pk → seq of its first cancel/refund
        self.exited: dict[int, int] = {}  # enrollment pk → seq it was first seen exited
        self.customers: dict[str, Customer] = {}
        self.order_state: dict[str, dict] = {}

    def teardown(self):
        transaction.set_rollback(True)
        self.savepoint.__exit__(None, None, None)
        clock.reset()

    def _tick(self) -> int:
        self.seq += 1
        return self.seq

    @initialize(change=st.sampled_from(DST_CHANGES), hours_before=st.integers(min_value=1, max_value=60))
    def store(self, change, hours_before):
        clock.reset()
        clock.frozen(change - dt.timedelta(hours=hours_before)).__enter__()
        # A short frequency cap, so that marketing email goes out often enough to be caught misbehaving.
        self.tenant = Tenant.objects.create(slug="machine", name="Machine Coffee", time_zone="Europe/Berlin",
                                            currency="EUR", frequency_cap_hours=2)
        self._journey("Thanks", "order_paid", "marketing", ["PT1H", "P1D", "P2D"])
        self._journey("Review", "order_delivered", "marketing", ["P1D", "PT12H"])
        self._journey("Receipt", "order_paid", "transactional", ["PT0S"])

    def _journey(self, name, trigger, message_class, waits):
        from journeys.durations import parse_duration

        journey = Journey.objects.for_tenant(self.tenant).create(
            tenant=self.tenant, name=name, trigger=trigger, status="active", message_class=message_class,
            exit_events=EXITS, entry_policy="once_per_order")
        for position, wait in enumerate(waits, start=1):
            template = EmailTemplate.objects.for_tenant(self.tenant).create(
                tenant=self.tenant, name=f"{name} {position}", subject=f"{name} {position}",
                body="<p>Hi {{ first_name }}, about order {{ order.number }}.</p>")
            Step.objects.for_tenant(self.tenant).create(tenant=self.tenant, journey=journey, position=position,
                                                        wait=parse_duration(wait), template=template)

    def _payload(self, external_id: str, status: str, total: str = "40.00") -> OrderIn:
        state = self.order_state[external_id]
        return OrderIn.model_validate({
            "external_id": external_id, "number": external_id, "currency": "EUR", "status": status,
            "total": total, "placed_at": state["placed_at"].isoformat(),
            "customer": {"external_id": state["customer"], "email": f"{state['customer']}@example.org",
                         "time_zone": state["zone"], "first_name": "Ada", "marketing_consent": True},
            "lines": [{"sku": "BEANS", "title": "Beans", "quantity": 1, "unit_price": total}]})

    # --- the storefront ---------------------------------------------------------

    @rule(target=orders, who=st.integers(min_value=0, max_value=2), status=st.sampled_from(["pending", "paid"]))
    def place_order(self, who, status):
        external_id = f"O{len(self.order_state) + 1}"
        self.order_state[external_id] = {"customer": f"c{who}", "zone": ZONES[who], "placed_at": clock.now()}
        result = order_ingest(tenant=self.tenant, data=self._payload(external_id, status))
        self.order_state[external_id]["pk"] = result.order.pk
        self._tick()
        return external_id

    @rule(order=orders, status=st.sampled_from(["paid", "fulfilled", "delivered"]),
          total=st.sampled_from(["40.00", "55.50"]))
    def update_order(self, order, status, total):
        from lifecycle.errors import ServiceError

        # A total below what was already refunded is refused (a 400 at the API): nothing happens.
        with contextlib.suppress(ServiceError):
            order_ingest(tenant=self.tenant, data=self._payload(order, status, total))
        self._tick()

    @rule(order=orders)
    def cancel(self, order):
        _, changed = order_mark(tenant=self.tenant, external_id=order, milestone="cancelled", reason="changed mind")
        seq = self._tick()
        if changed:
            self.order_exits.setdefault(self.order_state[order]["pk"], seq)

    @rule(order=orders, amount=st.sampled_from(["5.00", "40.00"]))
    def refund(self, order, amount):
        from lifecycle.errors import ServiceError

        try:
            refund_record(tenant=self.tenant, order_external_id=order,
                          data=RefundIn.model_validate({"external_id": f"r{self.seq}", "amount": amount}))
        except ServiceError:
            self._tick()  # more than is left to refund: refused, nothing happened
            return
        self.order_exits.setdefault(self.order_state[order]["pk"], self._tick())

    # --- the customer and their mailbox ---------------------------------------------

    def _customer(self, who: int) -> Customer | None:
        return Customer.objects.for_tenant(self.tenant).filter(external_id=f"c{who}").first()

    @rule(who=st.integers(min_value=0, max_value=2))
    def unsubscribe(self, who):
        customer = self._customer(who)
        if customer is not None:
            customer_unsubscribe(customer=customer, detail="unsubscribe page")
            self.stopped.setdefault(("unsubscribed", customer.pk), self._tick())

    @rule(who=st.integers(min_value=0, max_value=2))
    def hard_bounce(self, who):
        customer = self._customer(who)
        sent = customer and Delivery.objects.for_tenant(self.tenant).filter(customer=customer, state="sent").first()
        if not sent:
            return
        event = AnymailTrackingEvent(event_type="bounced", timestamp=clock.now(), message_id=sent.esp_message_id,
                                     recipient=customer.email, reject_reason="bounced",
                                     esp_event={"Type": "HardBounce"}, metadata={"tenant_id": str(self.tenant.pk)})
        assert esp_event_record(esp_name="Postmark", event=event) in ("recorded", "duplicate")
        self.stopped.setdefault(("suppressed", customer.pk), self._tick())

    @rule(who=st.integers(min_value=0, max_value=2))
    def erase(self, who):
        customer = self._customer(who)
        if customer is not None and customer.erased_at is None:
            customer_erase(tenant=self.tenant, external_id=f"c{who}")
            self.stopped.setdefault(("erased", customer.pk), self._tick())

    # --- time and the workers ---------------------------------------------------------

    @rule(minutes=st.sampled_from([7, 30, 59]))
    def move_clock_a_little(self, minutes):
        """Time passes without the workers (a backlog): the next dispatch finds it all due at once."""
        clock.advance(dt.timedelta(minutes=minutes))

    @rule(hours=st.sampled_from([1, 3, 9, 26]))
    def time_passes(self, hours):
        """Hours go by with beat running: each hour the event sweep and the dispatcher run."""
        for _ in range(hours):
            clock.advance(dt.timedelta(hours=1))
            self.sweep_events()
            self.dispatch()

    @rule()
    def sweep_events(self):
        while events_process_pending():
            pass
        self._tick()

    @rule()
    def dispatch(self):
        """What beat and the workers do (journeys.tasks.dispatch, then send): claim what is due across
        stores, then send each store's rows in batches."""
        with system_scope():
            claimed = deliveries_claim_by_tenant(limit=100)
        for tenant_id, ids in claimed.items():
            with tenant_scope(tenant_id):
                deliveries_send(delivery_ids=ids)
            rows = (Delivery.objects.for_tenant(tenant_id).filter(pk__in=ids, state=Delivery.State.SENT)
                    .select_related("enrollment").order_by("pk"))
            for row in rows:
                self.sent.append({"delivery": row.pk, "enrollment": row.enrollment_id, "step": row.step_id,
                                  "customer": row.customer_id, "order": row.enrollment.order_id,
                                  "marketing": row.message_class == "marketing", "at": clock.now(),
                                  "seq": self._tick()})

    # --- what must always hold --------------------------------------------------------

    @invariant()
    def note_exits(self):
        if not hasattr(self, "tenant"):
            return
        for pk in Enrollment.objects.for_tenant(self.tenant).filter(state="exited").values_list("pk", flat=True):
            self.exited.setdefault(pk, self.seq)

    @invariant()
    def one_email_per_enrollment_and_step(self):
        pairs = [(s["enrollment"], s["step"]) for s in self.sent]
        assert len(pairs) == len(set(pairs))
        esp = [int(m.metadata["delivery_id"]) for m in mail.outbox]
        assert sorted(esp) == sorted(s["delivery"] for s in self.sent)

    @invariant()
    def nothing_after_a_stop(self):
        for sent in self.sent:
            for kind in ("erased", "suppressed") + (("unsubscribed",) if sent["marketing"] else ()):
                stopped = self.stopped.get((kind, sent["customer"]))
                assert stopped is None or sent["seq"] < stopped, f"sent after the customer was {kind}: {sent}"
            order_exit = self.order_exits.get(sent["order"])
            assert order_exit is None or sent["seq"] < order_exit, f"sent after its order was cancelled/refunded: {sent}"
            exited = self.exited.get(sent["enrollment"])
            assert exited is None or sent["seq"] < exited, f"sent after its enrollment exited: {sent}"

    @invariant()
    def nothing_in_quiet_hours(self):
        if not self.sent:
            return
        zones = dict(Customer.objects.for_tenant(self.tenant).values_list("pk", "time_zone"))
        for sent in self.sent:
            # The zone the customer gave; an erased customer's was blanked, so read it from its order.
            zone = zones.get(sent["customer"]) or next(
                (s["zone"] for s in self.order_state.values() if s.get("pk") == sent["order"]), "Europe/Berlin")
            assert not quiet(sent["at"], zone), f"sent at {sent['at'].astimezone(zoneinfo.ZoneInfo(zone))} in {zone}"


def test_random_interleavings_keep_every_promise():
    examples = int(os.environ.get("PROOF_HYPOTHESIS_EXAMPLES", "40"))
    run_state_machine_as_test(JourneyMachine, settings=settings(
        max_examples=examples, stateful_step_count=30, deadline=None, database=None, derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


def test_the_quiet_hours_check_itself_knows_daylight_saving():
    # 20:30 UTC on 28 March is 21:30 in Berlin (quiet), on 29 March 22:30 (quiet); 06:30 UTC on the
    # 29th is 08:30 CEST (not quiet) though it would be 07:30 the day before.
    assert quiet(dt.datetime(2026, 3, 28, 20, 30, tzinfo=dt.UTC), "Europe/Berlin")
    assert not quiet(dt.datetime(2026, 3, 29, 6, 30, tzinfo=dt.UTC), "Europe/Berlin")
    assert quiet(dt.datetime(2026, 3, 28, 6, 30, tzinfo=dt.UTC), "Europe/Berlin")


def test_a_refund_or_cancellation_before_the_payment_still_ends_the_journey():
    """Found by the machine: a refund recorded while the order was pending, then the payment (the
    platform delivered them out of order). The enrollment came after the refund, and the gate only
    looked at exit events after the enrollment: the 'thanks' email went out for a refunded order."""
    machine = JourneyMachine()
    try:
        machine.store(change=DST_CHANGES[5], hours_before=60)
        refunded, cancelled = machine.place_order(who=0, status="pending"), machine.place_order(who=1,
                                                                                               status="pending")
        machine.refund(order=refunded, amount="5.00")
        machine.cancel(order=cancelled)
        machine.sweep_events()
        machine.update_order(order=refunded, status="paid", total="40.00")
        machine.update_order(order=cancelled, status="paid", total="40.00")
        machine.time_passes(hours=26)
        sent = {(s["order"], s["marketing"]) for s in machine.sent}
        thanks = Delivery.objects.for_tenant(machine.tenant).filter(journey__name="Thanks").order_by("pk")
        assert [(d.state, d.reason) for d in thanks] == [("skipped", "exit: order.refunded"),
                                                         ("skipped", "exit: order.cancelled")]
        assert not any(marketing for _, marketing in sent)
        machine.nothing_after_a_stop()
    finally:
        machine.teardown()


def test_a_refund_before_the_customer_was_erased_and_the_order_came_back_still_ends_the_journey():
    """Found by the machine: a pending order, its customer erased, a refund, then the payment. The
    storefront names the customer again, so the paid order moves to a new customer row, while the
    refund stays the erased one's: the gate looked for exits by the enrolled customer only, and the
    receipt went out for a refunded order."""
    machine = JourneyMachine()
    try:
        machine.store(change=DST_CHANGES[0], hours_before=1)
        order = machine.place_order(who=0, status="pending")
        machine.sweep_events()
        machine.erase(who=0)
        machine.refund(order=order, amount="5.00")
        machine.update_order(order=order, status="paid", total="40.00")
        machine.time_passes(hours=1)
        machine.nothing_after_a_stop()
        assert machine.sent == []
        receipts = Delivery.objects.for_tenant(machine.tenant).filter(journey__name="Receipt")
        assert [(d.state, d.reason) for d in receipts] == [("skipped", "exit: order.refunded")]
    finally:
        machine.teardown()


def test_an_update_below_what_was_refunded_is_refused_and_changes_nothing():
    machine = JourneyMachine()
    try:
        machine.store(change=DST_CHANGES[5], hours_before=60)
        order = machine.place_order(who=1, status="pending")
        machine.update_order(order=order, status="fulfilled", total="55.50")
        machine.refund(order=order, amount="5.00")
        machine.refund(order=order, amount="40.00")
        machine.update_order(order=order, status="paid", total="40.00")  # below the 45.00 refunded
        from lifecycle.models import Order

        row = Order.objects.for_tenant(machine.tenant).get(external_id=order)
        assert (row.total, row.refunded_total, row.status) == (Decimal("55.50"), Decimal("45.00"), "fulfilled")
    finally:
        machine.teardown()
