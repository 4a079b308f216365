"""One simulated customer at a time: their orders, events, journeys, emails, answers, points and referrals.

Each customer draws from their own random stream, seeded by (seed, index), so a customer's story
does not depend on how many came before or how the run is split into batches; only referrals
link customers (a friend's first order names an earlier advocate's code).

The known effect, precisely: every first paid order enrolls its customer in the "Second order
nudge" journey one minute after payment; `holdout_percent` of them (drawn from the customer's
stream) are held out. A customer places a second order within the journey's attribution window
(30 days after enrollment) with probability BASE_REPEAT if held out and BASE_REPEAT + true_lift if
not — the absolute lift, in probability, that the dashboard's conversion difference
(treatment − holdout, goal order.paid within the window) estimates. Nothing else depends on the
group: later orders, support, feedback, points and referrals are drawn the same way for both.
The "Post-delivery check-in" journey has no effect at all.

`regulars` (0 by default: the store above, draw for draw) gives the past something to tell: a share
REGULAR_SHARE of customers are regulars, drawn from a stream of their own, whose first basket has
1 + REGULAR_EXTRA_UNITS times as much of each item and whose chance of a second order is higher,
the others' lower, by `regulars` × BASE/REGULAR_SHARE between them, so the average stays BASE_REPEAT and the effect of the
journey stays exactly `true_lift` for everyone. What CUPED (journeys/abtests.py) needs to narrow an
interval: a fact known at enrollment (the first order's spend) that predicts the goal.
"""

import dataclasses
import datetime as dt
import random
from decimal import Decimal

from demo.simulation.world import World, window_days
from demo.simulation.writers import IdBlocks, RowWriter
from feedback.models import SurveyRequest, SurveyResponse
from journeys.models import Delivery, Enrollment
from lifecycle.models import Customer, Event, Order, OrderLine, Tenant
from lifecycle.money import money_str
from loyalty.models import LedgerEntry, LoyaltyAccount, PendingRelease, Redemption
from referrals.models import Click, Referral, ReferralCode, Reward

DAY = dt.timedelta(days=1)
MINUTE = dt.timedelta(minutes=1)
# P(second order within the nudge's window | held out). true_lift is added for the treatment group.
BASE_REPEAT = 0.20
# P(a second order after the window | none within it), and the gap after the window (mean days).
LATE_REPEAT = 0.35
LATE_GAP_DAYS = 60
# With Params.regulars > 0: the share of regulars, and how many more of each item their first basket has (3x).
REGULAR_SHARE = 0.3
REGULAR_EXTRA_UNITS = 2
# After the second order: P(one more), again and again, and the mean gap between them.
NEXT_ORDER = 0.45
NEXT_GAP_DAYS = 45
CONSENT = 0.90
SUPPORT_PER_ORDER = 0.10
REGISTERED = 0.35
FEATURE_USED = 0.60
NPS_ASKED, NPS_ANSWERED = 0.5, 0.35
CSAT_ASKED, CSAT_ANSWERED = 0.8, 0.45
CES_ASKED, CES_ANSWERED = 0.5, 0.40
LOYALTY_MEMBER = 0.55
LOYALTY_PENDING_DAYS = 14
REDEEM = 0.5
ADVOCATE = 0.15
REFERRED = 0.05
REFERRAL_RELEASE_DAYS = 30
ADVOCATE_REWARD = Decimal("10")
# Email engagement of a sent step.
BOUNCED, OPENED, CLICKED = 0.03, 0.45, 0.25

FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Edsger", "Frances", "Tim", "Radia",
               "Dennis", "Hedy", "John", "Katherine", "Guido", "Sophie", "Donald", "Mary", "Niklaus"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Dijkstra", "Allen",
              "Berners-Lee", "Perlman", "Ritchie", "Lamarr", "Backus", "Johnson", "van Rossum", "Wilson", "Knuth"]
CSAT_WEIGHTS = [6, 8, 16, 35, 35]  # scores 1..5
CES_WEIGHTS = [30, 28, 18, 10, 7, 4, 3]  # scores 1..7: most found it easy


@dataclasses.dataclass(frozen=True)
class Params:
    customers: int
    days: int
    true_lift: float
    seed: int = 1
    base_repeat: float = BASE_REPEAT
    regulars: float = 0.0

    def repeat_of(self, regular: bool) -> float:
        """P(second order within the window | held out), for a regular or not (the module's docstring)."""
        gap = self.regulars * self.base_repeat / REGULAR_SHARE
        return self.base_repeat + (gap * (1 - REGULAR_SHARE) if regular else -gap * REGULAR_SHARE)

    def problems(self) -> list[str]:
        found = []
        if not 0 <= self.regulars <= 1:
            found.append(f"--regulars must be between 0 (the past tells nothing) and 1, not {self.regulars}")
        elif self.regulars and self.repeat_of(True) + self.true_lift > 1:
            found.append(f"--regulars {self.regulars} with --true-lift {self.true_lift} would give regulars a "
                         "chance of a second order above 1: lower one of them")
        if self.customers < 1:
            found.append(f"--customers must be at least 1, not {self.customers}")
        if not 31 <= self.days <= 3650:
            found.append(f"--days must be between 31 and 3650 (the nudge's window is 30 days), not {self.days}")
        low, high = -self.base_repeat, 1 - self.base_repeat
        if not low <= self.true_lift <= high:
            found.append(f"--true-lift is an absolute change in the probability of a second order within 30 days "
                         f"(base {self.base_repeat:.2f}), so it must be between {low:.2f} and {high:.2f}, "
                         f"not {self.true_lift}")
        return found


@dataclasses.dataclass
class Tally:
    """What the run wrote, and the effect as it came out of the dice (matured enrollments only)."""

    customers: int = 0
    orders: int = 0
    revenue: Decimal = Decimal(0)
    treatment: int = 0
    treatment_converted: int = 0
    holdout: int = 0
    holdout_converted: int = 0


@dataclasses.dataclass
class _Order:
    id: int
    placed_at: dt.datetime
    paid_at: dt.datetime
    fulfilled_at: dt.datetime | None
    delivered_at: dt.datetime | None
    total: Decimal


class Generator:
    def __init__(self, world: World, params: Params, now: dt.datetime, writer: RowWriter,
                 ids: IdBlocks | None = None) -> None:
        self.world, self.params, self.now, self.writer = world, params, now, writer
        self.ids = ids or IdBlocks()
        self.tenant: Tenant = world.tenant
        self.tenant_id = self.tenant.pk
        self.currency = self.tenant.currency
        self.start = now - params.days * DAY
        self.window = window_days(world.nudge)
        self.check_in_window = window_days(world.check_in)
        self.advocates: list[tuple[int, int, str, dt.datetime]] = []  # (code id, customer id, code, since)
        self.tally = Tally()
        self._redemptions = 0

    # --- helpers -----------------------------------------------------------------------

    def _id(self, model) -> int:
        return self.ids.take(model)

    def _add(self, model, **row) -> int:
        row.setdefault("id", self._id(model))
        row["tenant_id"] = self.tenant_id
        self.writer.add(model, row)
        return row["id"]

    def _event(self, type_: str, at: dt.datetime, customer_id: int, order_id: int | None = None,
               data: dict | None = None, dedupe_key: str | None = None) -> None:
        self._add(Event, type=type_, occurred_at=at, customer_id=customer_id, order_id=order_id, data=data or {},
                  backfill=False, dedupe_key=dedupe_key, created_at=at, processed_at=at + dt.timedelta(seconds=1),
                  process_attempts=0)

    def _past(self, at: dt.datetime | None) -> bool:
        return at is not None and at <= self.now

    # --- one customer ------------------------------------------------------------------

    def customer(self, index: int) -> None:
        p = self.params
        rng = random.Random(p.seed * 1_000_003 + index)
        cid = self._id(Customer)
        # Newer stores grow: more first orders lately (u ** 0.8 leans towards the end of the period).
        span = (self.now - self.start - 2 * DAY).total_seconds()
        first_at = self.start + dt.timedelta(seconds=span * rng.random() ** 0.8)
        holdout = rng.random() * 100 < self.world.nudge.holdout_percent
        regular = bool(p.regulars) and random.Random(f"regular:{p.seed}:{index}").random() < REGULAR_SHARE
        repeat_p = (p.repeat_of(regular) if p.regulars else p.base_repeat) + (0 if holdout else p.true_lift)

        # The order dates: the first, then the second (in the window or later), then more.
        enrolled_at = first_at + 2 * MINUTE + MINUTE
        times = [first_at]
        if rng.random() < repeat_p:
            times.append(enrolled_at + dt.timedelta(days=rng.uniform(1, self.window - 1 / 24)))
        elif rng.random() < LATE_REPEAT:
            times.append(enrolled_at + dt.timedelta(days=self.window + 1 / 24 + rng.expovariate(1 / LATE_GAP_DAYS)))
        if len(times) == 2:
            while rng.random() < NEXT_ORDER:
                times.append(times[-1] + dt.timedelta(days=5 + rng.expovariate(1 / NEXT_GAP_DAYS)))
        times = [t for t in times if t <= self.now]

        orders = [self._order(rng, cid, n, at, REGULAR_EXTRA_UNITS if regular and n == 0 else 0)
                  for n, at in enumerate(times)]
        consent = rng.random() < CONSENT
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        total_spent = sum((o.total for o in orders), Decimal(0))
        self._add(Customer, id=cid, external_id=f"sim{p.seed}-{index}",
                  email=f"{first}.{last.replace(' ', '')}.{index}@sim{p.seed}.example".lower(),
                  first_name=first, last_name=last, locale=rng.choice(["en", "en", "de", "fr"]), time_zone="",
                  marketing_consent=True if consent else None, consent_updated_at=first_at if consent else None,
                  consent_source=Customer.ConsentSource.CHECKOUT if consent else "", unsubscribed_at=None,
                  first_order_at=orders[0].placed_at, last_order_at=orders[-1].placed_at, order_count=len(orders),
                  total_spent=total_spent, created_at=first_at, updated_at=self.now)
        self._event("customer.created", first_at, cid, dedupe_key=f"customer.created:{cid}")
        self.tally.customers += 1
        self.tally.orders += len(orders)
        self.tally.revenue += total_spent

        self._nudge(rng, cid, orders, enrolled_at, holdout, consent)
        for order in orders:
            if order.delivered_at is not None:
                self._check_in(rng, cid, order, orders, consent)
        self._support_and_feedback(rng, cid, orders)
        self._loyalty(rng, cid, orders)
        self._referrals(rng, cid, orders)

    def _order(self, rng: random.Random, cid: int, n: int, placed_at: dt.datetime, extra_units: int = 0) -> _Order:
        oid = self._id(Order)
        catalogue = self.world.products if n == 0 else [p for p in self.world.products if p[4] < 40]
        picks = rng.sample(catalogue, rng.choice([1, 1, 2, 2, 3]))
        total = Decimal(0)
        for position, (pid, external_id, sku, title, price) in enumerate(picks):
            quantity = rng.choice([1, 1, 1, 2]) * (1 + extra_units)
            total += price * quantity
            self._add(OrderLine, order_id=oid, product_id=pid, position=position, external_id="",
                      product_external_id=external_id, sku=sku, title=title, quantity=quantity, unit_price=price)
        paid_at = placed_at + 2 * MINUTE
        fulfilled_at = placed_at + DAY + dt.timedelta(hours=rng.uniform(0, 20))
        delivered_at = fulfilled_at + dt.timedelta(days=rng.uniform(1.5, 4))
        fulfilled_at = fulfilled_at if self._past(fulfilled_at) else None
        delivered_at = delivered_at if self._past(delivered_at) else None
        status = (Order.Status.DELIVERED if delivered_at else Order.Status.FULFILLED if fulfilled_at
                  else Order.Status.PAID)
        number = f"S{oid}"
        self._add(Order, id=oid, external_id=f"sim-{oid}", number=number, customer_id=cid, status=status,
                  placed_at=placed_at, paid_at=paid_at, fulfilled_at=fulfilled_at, delivered_at=delivered_at,
                  currency=self.currency, subtotal=total, discount_total=Decimal(0), total=total,
                  refunded_total=Decimal(0), discount_codes=[], source=Order.Source.IMPORT,
                  source_updated_at=delivered_at or fulfilled_at or paid_at, created_at=placed_at,
                  updated_at=delivered_at or fulfilled_at or paid_at)
        data = {"number": number, "total": money_str(total, self.currency), "currency": self.currency}
        for type_, at in (("order.placed", placed_at), ("order.paid", paid_at), ("order.fulfilled", fulfilled_at),
                          ("order.delivered", delivered_at)):
            if at is not None:
                self._event(type_, at, cid, oid, data, dedupe_key=f"{type_}:{oid}")
        return _Order(oid, placed_at, paid_at, fulfilled_at, delivered_at, total)

    # --- journeys ----------------------------------------------------------------------

    def _enrollment(self, journey, cid: int, order: _Order, at: dt.datetime, state: str, reason: str = "",
                    ended_at: dt.datetime | None = None) -> int:
        return self._add(Enrollment, journey_id=journey.pk, customer_id=cid, order_id=order.id, trigger_event_id=None,
                         state=state, reason=reason, enrolled_at=at, ended_at=ended_at)

    def _delivery(self, rng: random.Random, journey, step, enrollment_id: int, cid: int, due_at: dt.datetime,
                  consent: bool, exit_at: dt.datetime | None) -> tuple[str, dt.datetime | None]:
        """Write a step's row; returns its state and when it was sent."""
        row = {"enrollment_id": enrollment_id, "step_id": step.pk, "journey_id": journey.pk, "customer_id": cid,
               "message_class": journey.message_class, "priority": journey.priority, "due_at": due_at,
               "created_at": due_at - step.wait, "updated_at": min(due_at, self.now), "history": []}
        if exit_at is not None and exit_at <= due_at:
            reason = "exit: order.placed"
            row.update(state=Delivery.State.SKIPPED, reason=reason, updated_at=exit_at,
                       history=[{"at": exit_at.isoformat(), "state": "skipped", "reason": reason}])
            self._add(Delivery, **row)
            return Delivery.State.SKIPPED, None
        if due_at > self.now:
            self._add(Delivery, **row, state=Delivery.State.PENDING)
            return Delivery.State.PENDING, None
        if not consent:
            reason = "no marketing consent"
            row.update(state=Delivery.State.SKIPPED, reason=reason,
                       history=[{"at": due_at.isoformat(), "state": "skipped", "reason": reason}])
            self._add(Delivery, **row)
            return Delivery.State.SKIPPED, None
        sent_at = due_at + dt.timedelta(seconds=rng.uniform(5, 120))
        engagement = {}
        if rng.random() < BOUNCED:
            engagement["bounced_at"] = sent_at + MINUTE
        else:
            engagement["delivered_at"] = sent_at + MINUTE
            if rng.random() < OPENED:
                engagement["opened_at"] = sent_at + dt.timedelta(hours=rng.expovariate(1 / 5))
                if rng.random() < CLICKED:
                    engagement["clicked_at"] = engagement["opened_at"] + dt.timedelta(minutes=rng.uniform(0, 30))
        engagement = {k: v for k, v in engagement.items() if v <= self.now}
        did = self._id(Delivery)
        self._add(Delivery, id=did, **row, **engagement, state=Delivery.State.SENT, sent_at=sent_at, attempts=1,
                  message_id=f"<sim-{did}@lifecycle.example>", esp_message_id=f"sim-{did}")
        return Delivery.State.SENT, sent_at

    def _nudge(self, rng, cid: int, orders: list[_Order], enrolled_at: dt.datetime, holdout: bool,
               consent: bool) -> None:
        journey = self.world.nudge
        matured = enrolled_at + journey.attribution_window <= self.now
        converted = len(orders) > 1 and orders[1].paid_at <= enrolled_at + journey.attribution_window
        if matured:
            if holdout:
                self.tally.holdout += 1
                self.tally.holdout_converted += converted
            else:
                self.tally.treatment += 1
                self.tally.treatment_converted += converted
        if holdout:
            self._enrollment(journey, cid, orders[0], enrolled_at, Enrollment.State.HOLDOUT, ended_at=enrolled_at,
                             reason=f"holdout group ({journey.holdout_percent}%): measured, not messaged")
            return
        exit_at = orders[1].placed_at if len(orders) > 1 else None
        eid = self._id(Enrollment)
        previous, state = enrolled_at, Enrollment.State.COMPLETED
        for step in self.world.nudge_steps:
            due = previous + step.wait
            outcome, sent_at = self._delivery(rng, journey, step, eid, cid, due, consent, exit_at)
            if outcome == "pending":
                state = Enrollment.State.ACTIVE
                break
            if outcome == "skipped" and exit_at is not None and exit_at <= due:
                state = Enrollment.State.EXITED
                break
            previous = sent_at or due
        ended_at = None if state == Enrollment.State.ACTIVE else (exit_at if state == Enrollment.State.EXITED
                                                                  else previous)
        self._add(Enrollment, id=eid, journey_id=journey.pk, customer_id=cid, order_id=orders[0].id,
                  trigger_event_id=None, state=state, enrolled_at=enrolled_at, ended_at=ended_at,
                  reason="exit: order.placed" if state == Enrollment.State.EXITED else "")

    def _check_in(self, rng, cid: int, order: _Order, orders: list[_Order], consent: bool) -> None:
        journey = self.world.check_in
        enrolled_at = order.delivered_at + MINUTE
        if rng.random() * 100 < journey.holdout_percent:
            self._enrollment(journey, cid, order, enrolled_at, Enrollment.State.HOLDOUT, ended_at=enrolled_at,
                             reason=f"holdout group ({journey.holdout_percent}%): measured, not messaged")
            return
        eid = self._id(Enrollment)
        step = self.world.check_in_steps[0]
        outcome, sent_at = self._delivery(rng, journey, step, eid, cid, enrolled_at + step.wait, consent, None)
        state = Enrollment.State.ACTIVE if outcome == "pending" else Enrollment.State.COMPLETED
        self._add(Enrollment, id=eid, journey_id=journey.pk, customer_id=cid, order_id=order.id,
                  trigger_event_id=None, state=state, reason="", enrolled_at=enrolled_at,
                  ended_at=None if state == Enrollment.State.ACTIVE else (sent_at or enrolled_at + step.wait))

    # --- support, adoption, feedback -----------------------------------------------------

    def _survey(self, rng, kind: str, cid: int, order_id: int | None, asked_at: dt.datetime, because: str,
                answered: float, score_of) -> None:
        survey = self.world.surveys[kind]
        rid = self._add(SurveyRequest, survey_id=survey.pk, customer_id=cid, order_id=order_id, product_id=None,
                        delivery_id=None, journey_id=None, asked_because=because, asked_at=asked_at)
        answered_at = asked_at + dt.timedelta(hours=rng.expovariate(1 / 20))
        if rng.random() < answered and answered_at <= self.now:
            score = score_of()
            self._add(SurveyResponse, request_id=rid, survey_id=survey.pk, customer_id=cid, order_id=order_id,
                      product_id=None, journey_id=None, score=score, comment="", category=survey.category(score),
                      state=SurveyResponse.State.FINAL, answered_at=answered_at, settles_at=None,
                      finalized_at=answered_at, edits=0, updated_at=answered_at)

    def _nps_score(self, rng, at: dt.datetime) -> int:
        progress = (at - self.start) / (self.now - self.start)  # the store slowly gets better
        r = rng.random()
        if r < 0.42 + 0.15 * progress:
            return rng.choice([9, 10])
        if r < 0.75 + 0.07 * progress:
            return rng.choice([7, 8])
        return rng.choice([3, 5, 6, 6, 0, 4])

    def _support_and_feedback(self, rng, cid: int, orders: list[_Order]) -> None:
        first = orders[0]
        for order in orders:
            if order.delivered_at and rng.random() < SUPPORT_PER_ORDER:
                at = order.delivered_at + dt.timedelta(days=rng.uniform(0.5, 6))
                if self._past(at):
                    self._event("support.contacted", at, cid, order.id,
                                {"channel": rng.choice(["email", "chat", "phone"]), "simulated": True})
                    asked = at + DAY
                    if self._past(asked) and rng.random() < CSAT_ASKED:
                        self._survey(rng, "csat", cid, order.id, asked, "after a support contact", CSAT_ANSWERED,
                                     lambda: rng.choices(range(1, 6), CSAT_WEIGHTS)[0])
                    if self._past(asked) and rng.random() < CES_ASKED:
                        self._survey(rng, "ces", cid, order.id, asked, "after a support contact", CES_ANSWERED,
                                     lambda: rng.choices(range(1, 8), CES_WEIGHTS)[0])
        if first.delivered_at is None:
            return
        if rng.random() < REGISTERED:
            at = first.delivered_at + dt.timedelta(days=rng.uniform(0, 10))
            if self._past(at):
                self._event("product.registered", at, cid, first.id, {"simulated": True})
                used = at + dt.timedelta(days=rng.uniform(1, 20))
                if rng.random() < FEATURE_USED and self._past(used):
                    self._event("feature.used", used, cid, None, {"feature": "brew-timer", "simulated": True})
        asked = first.delivered_at + 14 * DAY
        if self._past(asked) and rng.random() < NPS_ASKED:
            self._survey(rng, "nps", cid, first.id, asked, "14 days after the first delivery", NPS_ANSWERED,
                         lambda: self._nps_score(rng, asked))

    # --- loyalty and referrals ---------------------------------------------------------

    def _loyalty(self, rng, cid: int, orders: list[_Order]) -> None:
        if rng.random() >= LOYALTY_MEMBER:
            return
        account_id = self._id(LoyaltyAccount)
        balance = pending = earned = 0
        last_activity = orders[0].paid_at
        moves: list[tuple[dt.datetime, str, _Order, int]] = []
        for order in orders:
            points = int(order.total)
            moves.append((order.paid_at, "earn", order, points))
            moves.append((order.paid_at + LOYALTY_PENDING_DAYS * DAY, "release", order, points))
        moves.sort(key=lambda m: m[0])
        common = {"account_id": account_id, "customer_id": cid, "debt_points": 0}
        for at, kind, order, points in moves:
            if kind == "earn":
                entry = self._add(LedgerEntry, **common, kind="earn", source=f"order:{order.id}",
                                  reason=f"Order {order.id}", amount=points, points=0, pending_points=points,
                                  order_id=order.id, rate=Decimal(1), base_amount=order.total, currency=self.currency,
                                  available_at=at + LOYALTY_PENDING_DAYS * DAY, created_at=at)
                pending += points
                earned += points
                last_activity = max(last_activity, at)
                if not self._past(at + LOYALTY_PENDING_DAYS * DAY):
                    self._add(PendingRelease, account_id=account_id, entry_id=entry,
                              release_at=at + LOYALTY_PENDING_DAYS * DAY)
                continue
            if not self._past(at):
                continue
            self._add(LedgerEntry, **common, kind="release", source=f"order:{order.id}", reason="Return window over",
                      amount=points, points=points, pending_points=-points, order_id=order.id, currency="",
                      created_at=at)
            pending -= points
            balance += points
            redeem_at = at + dt.timedelta(days=rng.uniform(1, 10))
            cost = self.world.loyalty_reward.cost
            if balance >= cost and rng.random() < REDEEM and self._past(redeem_at):
                self._redemptions += 1
                redemption_id = self._id(Redemption)
                entry = self._add(LedgerEntry, **common, kind="redeem", source=f"redemption:{redemption_id}",
                                  reason=f"Redeemed: {self.world.loyalty_reward.name}", amount=-cost, points=-cost,
                                  pending_points=0, currency="", created_at=redeem_at)
                self._add(Redemption, id=redemption_id, account_id=account_id, customer_id=cid,
                          reward_id=self.world.loyalty_reward.pk, entry_id=entry, points=cost,
                          code=f"SIM-{redemption_id}", state=Redemption.State.ISSUED, created_at=redeem_at)
                balance -= cost
                last_activity = max(last_activity, redeem_at)
        self._add(LoyaltyAccount, id=account_id, customer_id=cid, balance=balance, pending=pending, debt=0,
                  lifetime_earned=earned, tier_id=None, last_activity_at=last_activity, created_at=orders[0].paid_at)

    def _referrals(self, rng, cid: int, orders: list[_Order]) -> None:
        first = orders[0]
        # A friend: the first order came through an earlier advocate's link.
        if self.advocates and rng.random() < REFERRED:
            code_id, advocate_id, code, since = self.advocates[rng.randrange(len(self.advocates))]
            if since < first.placed_at - DAY and advocate_id != cid:
                self._click(rng, code_id, first.placed_at - dt.timedelta(hours=rng.uniform(1, 72)))
                release_at = first.paid_at + REFERRAL_RELEASE_DAYS * DAY
                rewarded = self._past(release_at)
                referral_id = self._add(
                    Referral, code_id=code_id, advocate_id=advocate_id, friend_id=cid, order_id=first.id,
                    carrier=Referral.Carrier.LANDING_SITE,
                    state=Referral.State.REWARDED if rewarded else Referral.State.CONVERTED, reason="", flags=[],
                    order_total=first.total, currency=self.currency, converted_at=first.paid_at,
                    release_at=release_at, rewarded_at=release_at if rewarded else None, created_at=first.paid_at)
                if rewarded:
                    self._add(Reward, referral_id=referral_id, customer_id=advocate_id, side=Reward.Side.ADVOCATE,
                              kind="discount_code", amount=ADVOCATE_REWARD, currency=self.currency,
                              code=f"THANKS-{referral_id}", state=Reward.State.ISSUED, attempts=1,
                              issued_at=release_at, created_at=release_at)
        # An advocate: shares their code a while after the first delivery.
        if first.delivered_at and rng.random() < ADVOCATE:
            since = first.delivered_at + dt.timedelta(days=rng.uniform(1, 20))
            if self._past(since):
                code = f"SIM{cid:X}"
                code_id = self._add(ReferralCode, customer_id=cid, code=code, vanity=False, created_at=since)
                self.advocates.append((code_id, cid, code, since))
                for _ in range(int(rng.expovariate(1 / 1.5))):
                    at = since + dt.timedelta(days=rng.expovariate(1 / 20))
                    if self._past(at):
                        self._click(rng, code_id, at)

    def _click(self, rng, code_id: int, at: dt.datetime) -> None:
        self._add(Click, code_id=code_id, at=at, ip_hash=f"{rng.getrandbits(256):064x}",
                  device_hash=f"{rng.getrandbits(256):064x}", by_advocate=False)
