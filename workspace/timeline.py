"""The customer page's reads: lifetime value, a health signal, and one timeline of everything.

The workspace is where the apps meet (as the URLconf and the settings are), so unlike
lifecycle's core modules this one reads journeys, feedback, loyalty and referrals: through
their selectors where they have one (the journey explanations behind
GET /api/v1/customers/{id}/journeys, the latest survey scores, the loyalty summary, the
advocate's referral stats) and through their models for the timeline's rows. Nothing here writes.

The timeline merges seven sources newest first. A page takes at most PAGE_SIZE + 1 rows from
each, all strictly older than the cursor in one total order (time, then kind, then id), merges
them and keeps PAGE_SIZE: whatever belongs on the page is in some source's first PAGE_SIZE + 1.
Each source reads through an index that starts (tenant, customer, …), so a page costs the same
for a customer with ten events as for one with ten thousand.
"""

import base64
import binascii
import dataclasses
import datetime as dt
import json
from decimal import Decimal
from typing import Any

from django.db.models import Case, Count, Prefetch, Q, QuerySet, Sum, When
from django.db.models.functions import Coalesce

from feedback.models import SurveyResponse
from journeys.health import AMBER, GREEN, LEVEL_WORDS, RED, UNKNOWN, Health, Signal, customer_health  # noqa: F401 - the customer page's names for them
from journeys.models import Delivery, Enrollment, Step, WebhookAttempt, WebhookCall
from journeys.selectors import customer_journeys_explain, customer_time_zone, step_summary
from lifecycle import jsonbody
from lifecycle.models import Customer, Event, Order, OrderLine, Tenant
from lifecycle.money import money_str
from loyalty.models import LedgerEntry, LoyaltyAccount
from loyalty.selectors import loyalty_summary
from referrals.models import Referral, ReferralCode
from referrals.selectors import advocate_stats

PAGE_SIZE = 50
# Ties in time are broken by kind in this order (newest first puts the last of these on top),
# then by id: an order sits under the payment event of the same instant.
KINDS = ("order", "event", "email", "journey", "feedback", "points", "referral")
KIND_RANK = {kind: rank for rank, kind in enumerate(KINDS)}
# Events that another row of the timeline already shows: the order itself, email engagement
# (the email row carries it), survey answers and referrals (their own rows).
EVENTS_SHOWN_ELSEWHERE = ("order.placed",)
EVENT_PREFIXES_SHOWN_ELSEWHERE = ("email.", "feedback.", "referral.")
# Steps that send nothing a customer sees: the journeys panel explains them.
SILENT_STEPS = (Step.Kind.CONDITION, Step.Kind.AB_SPLIT)
EVENT_WORDS = {
    "customer.created": "Became a customer",
    "customer.unsubscribed": "Unsubscribed from marketing email",
    "customer.preferences_changed": "Changed their email preferences",
    "customer.suppressed": "Email address suppressed",
    "customer.erased": "Personal data erased",
    "order.paid": "Order {number} paid",
    "order.fulfilled": "Order {number} shipped",
    "order.delivered": "Order {number} delivered",
    "order.cancelled": "Order {number} cancelled",
    "order.refunded": "Refund on order {number}",
    "support.contacted": "Contacted support",
    "support.resolved": "Support request resolved",
    "product.registered": "Registered a product",
    "feature.used": "Used a feature",
    "review.submitted": "Wrote a review",
    "review.approved": "Review approved",
    "loyalty.tier_reached": "Reached a loyalty tier",
    "loyalty.tier_lost": "Lost a loyalty tier",
    "loyalty.reward_unlocked": "Unlocked a loyalty reward",
    "loyalty.points_expiring": "Warned that points expire",
}
# Data keys that are plumbing, not news, on a custom event's row.
HIDDEN_DATA = {"delivery_id", "journey_id", "step_id", "message_id", "response_id", "request_id"}
MAX_DATA_ITEMS = 6
MAX_TEXT = 300


# --- lifetime value ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LifetimeValue:
    currency: str
    orders: int
    spent: Decimal
    refunded: Decimal
    net: Decimal
    average: Decimal | None
    # Paid orders in another currency: counted as orders, left out of the sums (no FX guessing).
    other_currency_orders: int

    def money(self, amount: Decimal | None) -> str:
        return "—" if amount is None else f"{money_str(amount, self.currency)} {self.currency}"

    @property
    def spent_text(self) -> str:
        return self.money(self.spent)

    @property
    def refunded_text(self) -> str:
        return self.money(self.refunded)

    @property
    def net_text(self) -> str:
        return self.money(self.net)

    @property
    def average_text(self) -> str:
        return self.money(self.average)


def lifetime_value(*, tenant: Tenant, customer: Customer) -> LifetimeValue:
    """Paid, uncancelled orders (the ones Customer.total_spent counts): spent, refunded, net, average."""
    counted = Order.objects.for_tenant(tenant).filter(customer=customer, paid_at__isnull=False,
                                                      cancelled_at__isnull=True)
    same = Q(currency=tenant.currency)
    row = counted.aggregate(
        orders=Count("pk"), in_currency=Count("pk", filter=same),
        spent=Sum("total", filter=same), refunded=Sum("refunded_total", filter=same))
    spent, refunded = row["spent"] or Decimal(0), row["refunded"] or Decimal(0)
    net = spent - refunded
    average = (net / row["in_currency"]).quantize(Decimal("0.01")) if row["in_currency"] else None
    return LifetimeValue(currency=tenant.currency, orders=row["orders"], spent=spent, refunded=refunded, net=net,
                         average=average, other_currency_orders=row["orders"] - row["in_currency"])


# --- health: journeys.health (a condition and a segment test it too) ---------------------

health = customer_health


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"

# --- side panels --------------------------------------------------------------------------


def journeys(*, tenant: Tenant, customer: Customer):
    """Each journey: in or not, and why (journeys.selectors.customer_journeys_explain)."""
    return customer_journeys_explain(tenant=tenant, customer=customer)


def loyalty(*, tenant: Tenant, customer: Customer):
    return loyalty_summary(tenant=tenant.pk, customer=customer)


def referrals(*, tenant: Tenant, customer: Customer) -> dict[str, Any]:
    codes = list(ReferralCode.objects.for_tenant(tenant).filter(customer=customer).order_by("vanity", "pk")
                 .values_list("code", "disabled_at"))
    return {"codes": codes, **advocate_stats(tenant=tenant, customer=customer)}


# --- the timeline ---------------------------------------------------------------------------


class BadCursor(ValueError):
    pass


@dataclasses.dataclass
class Item:
    at: dt.datetime
    kind: str
    pk: int
    title: str
    detail: str = ""
    state: str = ""
    state_words: str = ""
    order_id: int | None = None
    lines: list[OrderLine] = dataclasses.field(default_factory=list)
    data: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def key(self) -> tuple[dt.datetime, int, int]:
        return (self.at, KIND_RANK[self.kind], self.pk)


@dataclasses.dataclass
class TimelinePage:
    items: list[Item]
    next_cursor: str | None


def _encode(item: Item) -> str:
    raw = json.dumps([item.at.isoformat(), item.kind, item.pk], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[dt.datetime, str, int]:
    try:
        at, kind, pk = jsonbody.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = dt.datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadCursor(cursor) from exc
    if at.tzinfo is None or kind not in KIND_RANK or isinstance(pk, bool) or not isinstance(pk, int):
        raise BadCursor(cursor)
    return at, kind, pk


def _older(queryset: QuerySet, field: str, kind: str, cursor: tuple[dt.datetime, str, int] | None) -> QuerySet:
    """Rows after the cursor in newest-first (time, kind, id) order, newest first, PAGE_SIZE + 1 of them."""
    if cursor is not None:
        at, cursor_kind, pk = cursor
        rank, cursor_rank = KIND_RANK[kind], KIND_RANK[cursor_kind]
        if rank < cursor_rank:
            queryset = queryset.filter(**{f"{field}__lte": at})
        elif rank > cursor_rank:
            queryset = queryset.filter(**{f"{field}__lt": at})
        else:
            queryset = queryset.filter(**{f"{field}__lte": at}).exclude(**{field: at, "pk__gte": pk})
    return queryset.order_by(f"-{field}", "-pk")[: PAGE_SIZE + 1]


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _who(customer: Customer | None) -> str:
    if customer is None:
        return "someone"
    if customer.erased_at:
        return f"an erased customer (#{customer.pk})"
    return customer.email or customer.external_id or f"customer #{customer.pk}"


def _orders(tenant: Tenant, customer: Customer, cursor) -> list[Item]:
    lines = Prefetch("lines", queryset=OrderLine.objects.for_tenant(tenant).order_by("position", "pk"))
    rows = _older(Order.objects.for_tenant(tenant).filter(customer=customer)
                  .annotate(ts=Coalesce("placed_at", "created_at")).prefetch_related(lines), "ts", "order", cursor)
    items = []
    for order in rows:
        refunded = f", {money_str(order.refunded_total, order.currency)} refunded" if order.refunded_total else ""
        items.append(Item(
            at=order.ts, kind="order", pk=order.pk, order_id=order.pk, state=order.status, state_words=order.status,
            title=f"Order {order.number or order.external_id}: {money_str(order.total, order.currency)} "
                  f"{order.currency}{refunded}",
            detail=f"{_plural(sum(line.quantity for line in order.lines.all()), 'item')} · {order.source}",
            lines=list(order.lines.all())))
    return items


def _event_detail(event: Event) -> tuple[str, list[tuple[str, str]]]:
    data = event.data if isinstance(event.data, dict) else {}
    if event.type == "order.refunded":
        reason = f" — {data['reason']}" if data.get("reason") else ""
        return f"{data.get('amount', '')} {data.get('currency', '')}{reason}".strip(), []
    if event.type in ("order.paid", "order.fulfilled", "order.delivered", "order.cancelled"):
        return (f"{data.get('total', '')} {data.get('currency', '')}".strip(), [])
    if event.type == "customer.unsubscribed":
        return " ".join(str(v) for v in (data.get("source"), data.get("detail")) if v), []
    if event.type == "customer.suppressed":
        return str(data.get("reason", "")), []
    if event.type == "customer.erased":
        return "", []
    # Sorted: jsonb keeps keys in its own order (shortest first), which reads as no order at all.
    shown = [(str(k), _text(v)) for k, v in sorted(data.items()) if k not in HIDDEN_DATA][:MAX_DATA_ITEMS]
    return "", shown


def _events(tenant: Tenant, customer: Customer, cursor) -> list[Item]:
    events = (Event.objects.for_tenant(tenant).filter(customer=customer).exclude(type__in=EVENTS_SHOWN_ELSEWHERE)
              .select_related("order"))
    for prefix in EVENT_PREFIXES_SHOWN_ELSEWHERE:
        events = events.exclude(type__startswith=prefix)
    items = []
    for event in _older(events, "occurred_at", "event", cursor):
        number = (event.order.number or event.order.external_id) if event.order else ""
        title = EVENT_WORDS.get(event.type, event.type).format(number=number)
        detail, data = _event_detail(event)
        items.append(Item(at=event.occurred_at, kind="event", pk=event.pk, title=title, detail=detail, data=data,
                          order_id=event.order_id, state="imported" if event.backfill else "",
                          state_words="imported history" if event.backfill else ""))
    return items


def email_state(delivery: Delivery) -> str:
    """The furthest the email got: bounced and complained trump the rest; else clicked > opened > delivered."""
    for state, at in (("complained", delivery.complained_at), ("bounced", delivery.bounced_at),
                      ("clicked", delivery.clicked_at), ("opened", delivery.opened_at),
                      ("delivered", delivery.delivered_at)):
        if at:
            return state
    return delivery.state


# When an email row happened: sent, or settled without sending (skipped, failed, ambiguous: every
# path that settles a delivery stamps updated_at), else when it is due. A step skipped on an exit
# sits where the exit happened, not at the future time it would have been sent.
SETTLED_AT = Case(When(state__in=[Delivery.State.SKIPPED, Delivery.State.FAILED, Delivery.State.AMBIGUOUS],
                       then="updated_at"))


def _emails(tenant: Tenant, customer: Customer, cursor, zone) -> list[Item]:
    deliveries = (Delivery.objects.for_tenant(tenant).filter(customer=customer).exclude(step__kind__in=SILENT_STEPS)
                  .annotate(ts=Coalesce("sent_at", SETTLED_AT, "due_at", "created_at"))
                  .select_related("step", "step__template", "journey", "enrollment"))
    items, deliveries_shown = [], []
    for delivery in _older(deliveries, "ts", "email", cursor):
        deliveries_shown.append(delivery)
        step = delivery.step
        what = step.name or (step.template.name if step.template else "") or step.get_kind_display()
        state = email_state(delivery)
        active = delivery.enrollment.state == Enrollment.State.ACTIVE
        items.append(Item(at=delivery.ts, kind="email", pk=delivery.pk, state=state, state_words=state,
                          title=f"{delivery.journey.name} · step {step.position}: {what}",
                          detail=step_summary(step, delivery, active, zone)))
    _webhook_attempts(tenant, items, {i.pk for i, d in zip(items, deliveries_shown, strict=True)
                                      if d.step.kind == Step.Kind.WEBHOOK})
    return items


def _webhook_attempts(tenant: Tenant, items: list[Item], webhook_ids: set[int]) -> None:
    """A webhook step's item lists its call: the key, where it stands, and every attempt (journeys/webhooks.py).
    No query when the page shows no webhook step."""
    if not webhook_ids:
        return
    calls = {c.delivery_id: c for c in WebhookCall.objects.for_tenant(tenant).filter(delivery_id__in=webhook_ids)}
    if not calls:
        return
    attempts: dict[int, list[WebhookAttempt]] = {}
    for attempt in WebhookAttempt.objects.for_tenant(tenant).filter(call__in=calls.values()).order_by("number"):
        attempts.setdefault(attempt.call_id, []).append(attempt)
    for item in items:
        call = calls.get(item.pk)
        if call is None:
            continue
        item.data.append(("Webhook", f"{call.state} · key {call.idempotency_key}"
                                     + (f" · {call.last_error}" if call.last_error else "")))
        for attempt in attempts.get(call.pk, []):
            answer = f"HTTP {attempt.status_code}" if attempt.status_code else attempt.error
            item.data.append((f"Attempt {attempt.number}", f"{attempt.at:%Y-%m-%d %H:%M:%S} UTC · {answer} · "
                                                          f"{attempt.latency_ms} ms"
                                                          + (f" · {attempt.response_snippet[:120]}"
                                                             if attempt.response_snippet else "")))


ENROLLMENT_WORDS = {
    Enrollment.State.ACTIVE: "Entered “{name}”",
    Enrollment.State.COMPLETED: "Entered “{name}” (completed)",
    Enrollment.State.EXITED: "Entered “{name}” (exited)",
    Enrollment.State.HOLDOUT: "Held out of “{name}” (control group: nothing sent)",
    Enrollment.State.REJECTED: "Not enrolled in “{name}”",
}


def _enrollments(tenant: Tenant, customer: Customer, cursor) -> list[Item]:
    rows = _older(Enrollment.objects.for_tenant(tenant).filter(customer=customer)
                  .select_related("journey", "order"), "enrolled_at", "journey", cursor)
    items = []
    for enrollment in rows:
        order = f" for order {enrollment.order.number or enrollment.order.external_id}" if enrollment.order else ""
        items.append(Item(at=enrollment.enrolled_at, kind="journey", pk=enrollment.pk, state=enrollment.state,
                          state_words=enrollment.state, order_id=enrollment.order_id,
                          title=ENROLLMENT_WORDS[enrollment.state].format(name=enrollment.journey.name) + order,
                          detail=enrollment.reason))
    return items


def _feedback(tenant: Tenant, customer: Customer, cursor) -> list[Item]:
    rows = _older(SurveyResponse.objects.for_tenant(tenant).filter(customer=customer)
                  .select_related("survey", "product", "order"), "answered_at", "feedback", cursor)
    items = []
    for response in rows:
        survey = response.survey
        score = f": {response.score}" if response.score is not None else ""
        scale = survey.scale
        out_of = f" of {scale[0]}–{scale[1]}" if scale and response.score is not None else ""
        about = f" about {response.product.title or response.product.external_id}" if response.product else ""
        provisional = " (provisional: settles unless a scanner clicked)" if response.state == "provisional" else ""
        items.append(Item(at=response.answered_at, kind="feedback", pk=response.pk, order_id=response.order_id,
                          title=f"Answered {survey.name}{about}{score}{out_of}{provisional}",
                          detail=_text(response.comment) if response.comment else "",
                          state=response.category if response.category != "none" else "",
                          state_words=response.category if response.category != "none" else ""))
    return items


def _points(tenant: Tenant, customer: Customer, cursor) -> list[Item]:
    account = LoyaltyAccount.objects.for_tenant(tenant).filter(customer=customer).values_list("pk", flat=True).first()
    if account is None:
        return []
    rows = _older(LedgerEntry.objects.for_tenant(tenant).filter(account_id=account), "created_at", "points", cursor)
    items = []
    for entry in rows:
        moved = []
        if entry.pending_points:
            moved.append(f"pending {entry.pending_points:+d}")
        if entry.points:
            moved.append(f"available {entry.points:+d}")
        if entry.debt_points:
            moved.append(f"debt {entry.debt_points:+d}")
        items.append(Item(at=entry.created_at, kind="points", pk=entry.pk, order_id=entry.order_id,
                          title=f"{entry.amount:+d} points: {entry.reason}", detail=", ".join(moved),
                          state=entry.kind, state_words=entry.get_kind_display().lower()))
    return items


def _referrals(tenant: Tenant, customer: Customer, cursor) -> list[Item]:
    # As the friend, only a live referral has an index by friend (rejected ones are the advocate's story).
    mine = Q(advocate=customer) | (Q(friend=customer) & ~Q(state=Referral.State.REJECTED))
    rows = _older(Referral.objects.for_tenant(tenant).filter(mine).select_related("advocate", "friend", "order", "code"),
                  "converted_at", "referral", cursor)
    items = []
    for referral in rows:
        order = referral.order.number or referral.order.external_id
        total = f"{money_str(referral.order_total, referral.currency)} {referral.currency}"
        if referral.advocate_id == customer.pk:
            title = f"Referred {_who(referral.friend)}: order {order}, {total} (code {referral.code.code})"
        else:
            title = f"Was referred by {_who(referral.advocate)}: order {order}, {total} (code {referral.code.code})"
        items.append(Item(at=referral.converted_at, kind="referral", pk=referral.pk, order_id=referral.order_id,
                          title=title, detail=referral.reason, state=referral.state, state_words=referral.state))
    return items


def timeline_page(*, tenant: Tenant, customer: Customer, before: str = "") -> TimelinePage:
    """Up to PAGE_SIZE timeline items older than `before` (a cursor from the previous page), newest first.

    Raises BadCursor when `before` is not a cursor this function made.
    """
    if customer.tenant_id != tenant.pk:
        raise ValueError("the customer must belong to the tenant")
    cursor = _decode(before) if before else None
    zone = customer_time_zone(tenant=tenant, customer=customer)
    merged = [*_orders(tenant, customer, cursor), *_events(tenant, customer, cursor),
              *_emails(tenant, customer, cursor, zone), *_enrollments(tenant, customer, cursor),
              *_feedback(tenant, customer, cursor), *_points(tenant, customer, cursor),
              *_referrals(tenant, customer, cursor)]
    merged.sort(key=lambda item: item.key, reverse=True)
    page = merged[:PAGE_SIZE]
    more = len(merged) > PAGE_SIZE
    return TimelinePage(items=page, next_cursor=_encode(page[-1]) if more else None)

