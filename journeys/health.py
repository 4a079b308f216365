"""A customer's health: green, amber or red, and the signals that say why (time to value, support
contacts, the last order against the usual gap, the latest NPS/CSAT/CES). The customer page shows it;
a condition (`health_band`) and a segment (at risk) test it."""

import dataclasses
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from django.db.models import Count

from feedback.models import Survey, SurveyResponse
from lifecycle import clock
from lifecycle.models import Customer, Event, Tenant

GREEN, AMBER, RED, UNKNOWN = "green", "amber", "red", "unknown"
LEVEL_WORDS = {GREEN: "Healthy", AMBER: "Needs attention", RED: "At risk", UNKNOWN: "Not enough to judge yet"}
# The first sign the customer got what they paid for.
VALUE_EVENTS = ("order.delivered", "product.registered", "feature.used")
# Days from the first order to that sign: within the first is good, past the second is slow.
TTV_GOOD_DAYS, TTV_SLOW_DAYS = 7, 21
SUPPORT_WINDOW = dt.timedelta(days=30)
# Support contacts in the window: this many is worth a look, this many a problem.
SUPPORT_AMBER, SUPPORT_RED = 1, 3
# Since the last order, against the customer's usual gap between orders.
OVERDUE_AMBER, OVERDUE_RED = Decimal("1.5"), Decimal("2.5")
# One order and nothing since: after this long the customer may not come back.
SINGLE_ORDER_AMBER_DAYS = 120
SCORE_LEVEL = {SurveyResponse.Category.NEGATIVE: RED, SurveyResponse.Category.NEUTRAL: AMBER,
               SurveyResponse.Category.POSITIVE: GREEN}
SCORE_WORDS = {
    Survey.Kind.NPS: {"negative": "a detractor", "neutral": "a passive", "positive": "a promoter"},
    Survey.Kind.CSAT: {"negative": "unsatisfied", "neutral": "neutral", "positive": "satisfied"},
    Survey.Kind.CES: {"negative": "hard to get done", "neutral": "some effort", "positive": "easy"},
}


@dataclasses.dataclass(frozen=True)
class Signal:
    name: str
    level: str
    words: str


@dataclasses.dataclass(frozen=True)
class Health:
    level: str
    signals: list[Signal]

    @property
    def words(self) -> str:
        return LEVEL_WORDS[self.level]

    @property
    def reasons(self) -> list[Signal]:
        """The signals that set the level, worst first."""
        order = {RED: 0, AMBER: 1, GREEN: 2, UNKNOWN: 3}
        return sorted(self.signals, key=lambda s: order[s.level])


def _days(delta: dt.timedelta) -> int:
    return max(0, delta.days)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _time_to_value(facts: "Facts", customer: Customer, now: dt.datetime) -> Signal:
    name = "Time to value"
    if customer.first_order_at is None:
        return Signal(name, UNKNOWN, "No paid order yet.")
    first = facts.first_value
    if first is not None:
        days = _days(first[1] - customer.first_order_at)
        level = GREEN if days <= TTV_GOOD_DAYS else AMBER if days <= TTV_SLOW_DAYS else RED
        return Signal(name, level, f"{first[0]} {_plural(days, 'day')} after the first order.")
    waited = _days(now - customer.first_order_at)
    if waited <= TTV_GOOD_DAYS:
        return Signal(name, UNKNOWN, f"First order {_plural(waited, 'day')} ago; not delivered or used yet.")
    # Amber at most: a store that sends no delivery or usage events would otherwise paint everyone red.
    return Signal(name, AMBER, f"No delivery, product registration or feature use recorded "
                               f"{_plural(waited, 'day')} after the first order.")


def _support(facts: "Facts") -> Signal:
    contacts = facts.support_contacts
    level = RED if contacts >= SUPPORT_RED else AMBER if contacts >= SUPPORT_AMBER else GREEN
    words = f"{_plural(contacts, 'support contact')} in the last 30 days." if contacts else \
        "No support contacts in the last 30 days."
    return Signal("Support", level, words)


def _every(days: int) -> str:
    """The usual gap in words: "every day", "every 3 days"."""
    return "every day" if days == 1 else f"every {days} days"


def _recency(customer: Customer, now: dt.datetime) -> Signal:
    name = "Last order"
    if customer.last_order_at is None:
        return Signal(name, UNKNOWN, "No paid order yet.")
    since = _days(now - customer.last_order_at)
    if customer.order_count < 2 or customer.first_order_at is None:
        level = AMBER if since > SINGLE_ORDER_AMBER_DAYS else UNKNOWN
        return Signal(name, level, f"One order, {_plural(since, 'day')} ago; no usual gap between orders yet.")
    # The mean gap between orders, exact (not rounded up to a day): it is what "overdue" compares with.
    gap_days = Decimal((customer.last_order_at - customer.first_order_at).total_seconds()) / 86400 / (
        customer.order_count - 1)
    if gap_days < 1:
        # Orders a few hours apart (a forgotten item, a split basket) say nothing of a usual rhythm.
        level = AMBER if since > SINGLE_ORDER_AMBER_DAYS else UNKNOWN
        return Signal(name, level, f"{_plural(since, 'day')} since the last order; its {customer.order_count} "
                                   "orders came within a day of each other, so no usual gap between orders yet.")
    ratio = Decimal((now - customer.last_order_at).total_seconds()) / 86400 / gap_days
    level = RED if ratio > OVERDUE_RED else AMBER if ratio > OVERDUE_AMBER else GREEN
    usual = int(gap_days.to_integral_value())
    return Signal(name, level, f"{_plural(since, 'day')} since the last order; "
                               f"usually {_every(usual)} ({customer.order_count} orders).")


def _scores(facts: "Facts") -> list[Signal]:
    latest = facts.latest
    signals = []
    for kind in (Survey.Kind.NPS, Survey.Kind.CSAT, Survey.Kind.CES):
        score = latest.get(kind)
        if score is None:
            continue
        negative, positive = Survey.CATEGORY_RULES[kind]
        category = "negative" if negative(score) else "positive" if positive(score) else "neutral"
        low, high = Survey.SCALES[kind]
        signals.append(Signal(f"Latest {kind.upper()}", SCORE_LEVEL[category],
                              f"{score} on {low}–{high}: {SCORE_WORDS[kind][category]}."))
    if not signals:
        signals.append(Signal("Scores", UNKNOWN, "No NPS, CSAT or CES answer yet."))
    return signals


@dataclasses.dataclass
class Facts:
    """What a customer's health is read from besides the customer row."""

    first_value: tuple[str, dt.datetime] | None = None  # the first value event since the first order
    support_contacts: int = 0  # in the last SUPPORT_WINDOW
    latest: dict[str, int | None] = dataclasses.field(default_factory=dict)  # newest final score per kind


def health_facts(*, tenant: Tenant | int, customers: Sequence[Customer], now: dt.datetime) -> dict[int, Facts]:
    """Every customer's Facts with three queries, whatever their number."""
    facts = {c.pk: Facts(latest={kind: None for kind in Survey.SCALES}) for c in customers}
    first_order = {c.pk: c.first_order_at for c in customers}
    values = (Event.objects.for_tenant(tenant).filter(customer_id__in=list(facts), type__in=VALUE_EVENTS)
              .order_by("customer_id", "occurred_at", "pk").values_list("customer_id", "type", "occurred_at"))
    for customer_id, type_, at in values:
        since = first_order[customer_id]
        if facts[customer_id].first_value is None and since is not None and at >= since:
            facts[customer_id].first_value = (type_, at)
    support = (Event.objects.for_tenant(tenant).filter(customer_id__in=list(facts), type="support.contacted",
                                                       occurred_at__gte=now - SUPPORT_WINDOW)
               .values("customer_id").annotate(n=Count("pk")).values_list("customer_id", "n"))
    for customer_id, n in support:
        facts[customer_id].support_contacts = n
    scores = (SurveyResponse.objects.for_tenant(tenant)
              .filter(customer_id__in=list(facts), state=SurveyResponse.State.FINAL, score__isnull=False)
              .order_by("customer_id", "-finalized_at", "-pk").values_list("customer_id", "survey__kind", "score"))
    for customer_id, kind, score in scores:
        latest = facts[customer_id].latest
        if kind in latest and latest[kind] is None:
            latest[kind] = score
    return facts


def health_of(customer: Customer, facts: Facts, now: dt.datetime) -> Health:
    """Green, amber or red, and why, from the customer row and its Facts."""
    signals = [_time_to_value(facts, customer, now), _support(facts), _recency(customer, now), *_scores(facts)]
    levels = {s.level for s in signals}
    # No support contact is good news only next to some other: alone it says nothing of a new customer.
    evidence = {s.level for s in signals if s.name != "Support"}
    level = RED if RED in levels else AMBER if AMBER in levels else GREEN if GREEN in evidence else UNKNOWN
    return Health(level=level, signals=signals)


def health_levels(*, tenant: Tenant | int, customers: Sequence[Customer], now: dt.datetime) -> dict[int, str]:
    """Each customer's level (a condition's or a segment's health band), three queries for all of them."""
    facts = health_facts(tenant=tenant, customers=customers, now=now)
    return {c.pk: health_of(c, facts[c.pk], now).level for c in customers}


def customer_health(*, tenant: Tenant, customer: Customer, now: dt.datetime | None = None) -> Health:
    """Green, amber or red, and why: time to value, support contacts, the last order against the
    customer's usual gap, the latest NPS/CSAT/CES. The worst signal sets the level."""
    now = now or clock.now()
    return health_of(customer, health_facts(tenant=tenant, customers=[customer], now=now)[customer.pk], now)
