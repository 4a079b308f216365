"""What each journey did: its funnel per step, and its lift against its holdout group.

Conversion is the journey's goal (`goal_event`, order.paid unless the marketer chose another)
happening after the moment measured from and within the journey's `attribution_window`:
- for a step, after the email was sent (sent → delivered → opened → clicked → converted);
- for the lift, after enrollment, for treated and held-out customers alike. Held-out customers
  are enrolled (state holdout) and measured, never messaged, so the two groups differ only by
  the journey — the difference of their conversion rates is what the journey did.
Revenue is the net total of the customer's paid orders in that window (store currency).

The lift counts only enrollments whose window has closed: a customer enrolled yesterday has not
had 30 days to convert in either group, and counting them would drag both rates down unevenly.
"""

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Case, Count, Exists, F, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce

from journeys.models import Delivery, Enrollment, Journey, Step
from lifecycle.models import Event, Order, Tenant
from lifecycle.stats import (
    CONFIDENCE,
    Difference,
    GroupSums,
    Verdict,
    lift_verdict,
    newcombe_difference,
    welch_difference,
)

from .metrics import Period, ratio

TREATED = (Enrollment.State.ACTIVE, Enrollment.State.COMPLETED, Enrollment.State.EXITED)
ORDER_GOALS = ("order.paid", "order.placed")


def _goal_reached(tenant: Tenant, journey: Journey, start: str) -> Exists:
    """Whether the journey's goal happened in (start, start + window] for the outer row's customer."""
    window = journey.attribution_window
    if journey.goal_event in ORDER_GOALS or not journey.goal_event:
        # order_tenant_customer_idx: (tenant, customer, paid_at)
        return Exists(Order.objects.for_tenant(tenant).filter(
            customer_id=OuterRef("customer_id"), paid_at__gt=OuterRef(start),
            paid_at__lte=OuterRef(start) + Value(window), cancelled_at__isnull=True))
    return Exists(Event.objects.for_tenant(tenant).filter(
        customer_id=OuterRef("customer_id"), type=journey.goal_event, occurred_at__gt=OuterRef(start),
        occurred_at__lte=OuterRef(start) + Value(window)))


def _revenue_in_window(tenant: Tenant, journey: Journey, start: str):
    orders = (Order.objects.for_tenant(tenant)
              .filter(customer_id=OuterRef("customer_id"), paid_at__gt=OuterRef(start),
                      paid_at__lte=OuterRef(start) + Value(journey.attribution_window), cancelled_at__isnull=True,
                      currency=tenant.currency)
              .order_by().values("customer_id").annotate(net=Sum(F("total") - F("refunded_total"))).values("net"))
    return Coalesce(Subquery(orders[:1]), Value(Decimal(0)))


# --- lift -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Group:
    customers: int
    converted: int
    revenue: Decimal
    revenue_squares: Decimal

    @property
    def rate(self) -> float | None:
        return ratio(self.converted, self.customers)

    @property
    def revenue_per_customer(self) -> Decimal | None:
        return (self.revenue / self.customers).quantize(Decimal("0.01")) if self.customers else None

    def sums(self) -> GroupSums:
        return GroupSums(self.customers, float(self.revenue), float(self.revenue_squares))


@dataclasses.dataclass(frozen=True)
class Lift:
    journey: Journey
    treated: Group
    holdout: Group
    maturing: int  # enrolled in the period, window still open: not counted yet
    conversion: Difference | None
    revenue: Difference | None
    verdict: Verdict
    confidence: float = CONFIDENCE

    @property
    def incremental_conversions(self) -> float | None:
        return self.conversion.estimate * self.treated.customers if self.conversion else None

    @property
    def incremental_revenue(self) -> Decimal | None:
        if self.revenue is None:
            return None
        return (Decimal(str(self.revenue.estimate)) * self.treated.customers).quantize(Decimal("0.01"))


def journey_lift(tenant: Tenant, journey: Journey, period: Period, now: dt.datetime) -> Lift:
    """Treated vs held-out customers enrolled in the period whose attribution window has closed."""
    enrolled = Enrollment.objects.for_tenant(tenant).filter(
        period.q("enrolled_at"), journey=journey, state__in=[*TREATED, Enrollment.State.HOLDOUT])
    closed_before = now - journey.attribution_window
    maturing = enrolled.filter(enrolled_at__gt=closed_before).count()
    rows = (enrolled.filter(enrolled_at__lte=closed_before)
            .annotate(held=Case(When(state=Enrollment.State.HOLDOUT, then=Value(True)), default=Value(False)),
                      converted=_goal_reached(tenant, journey, "enrolled_at"),
                      revenue=_revenue_in_window(tenant, journey, "enrolled_at"))
            .values("held")
            .annotate(n=Count("pk"), conv=Count("pk", filter=Q(converted=True)), total=Sum("revenue"),
                      squares=Sum(F("revenue") * F("revenue")))
            .order_by())
    groups = {True: Group(0, 0, Decimal(0), Decimal(0)), False: Group(0, 0, Decimal(0), Decimal(0))}
    for row in rows:
        groups[row["held"]] = Group(row["n"], row["conv"], Decimal(row["total"] or 0), Decimal(row["squares"] or 0))
    treated, holdout = groups[False], groups[True]
    conversion = revenue = None
    if treated.customers and holdout.customers:
        conversion = newcombe_difference(treated.converted, treated.customers, holdout.converted, holdout.customers)
    if treated.customers >= 2 and holdout.customers >= 2:
        revenue = welch_difference(treated.sums(), holdout.sums())
    verdict = lift_verdict(conversion, holdout.customers)
    if journey.holdout_percent == 0 and holdout.customers == 0:
        verdict = Verdict(False, "No holdout group: this journey sends to everyone, so its lift cannot be measured. "
                                 "Give it a holdout percentage to start measuring.")
    return Lift(journey, treated, holdout, maturing, conversion, revenue, verdict)


def lifts(tenant: Tenant, period: Period, now: dt.datetime) -> list[Lift]:
    """Every journey with a holdout group (now or in the period), best-known first."""
    held = set(Enrollment.objects.for_tenant(tenant).filter(period.q("enrolled_at"), state=Enrollment.State.HOLDOUT)
               .values_list("journey_id", flat=True).distinct())
    journeys = Journey.objects.for_tenant(tenant).filter(Q(holdout_percent__gt=0) | Q(pk__in=held)).exclude(
        status=Journey.Status.ARCHIVED).order_by("-priority", "name")
    return [journey_lift(tenant, journey, period, now) for journey in journeys]


# --- funnels ------------------------------------------------------------------------------


def journey_funnels(tenant: Tenant, period: Period) -> list[dict[str, Any]]:
    """Per journey: enrolled in the period, then per step the emails sent in the period and what came of them."""
    enrolled: dict[int, dict[str, int]] = {}
    for row in (Enrollment.objects.for_tenant(tenant).filter(period.q("enrolled_at")).values("journey_id", "state")
                .annotate(n=Count("pk")).order_by()):
        enrolled.setdefault(row["journey_id"], {})[row["state"]] = row["n"]
    sending = set(Delivery.objects.for_tenant(tenant).filter(period.q("sent_at")).values_list("journey_id", flat=True)
                  .distinct())
    journeys = Journey.objects.for_tenant(tenant).filter(pk__in={*enrolled, *sending}).order_by("-priority", "name")
    out = []
    for journey in journeys:
        states = enrolled.get(journey.pk, {})
        steps = {s.pk: s for s in Step.objects.for_tenant(tenant).filter(journey=journey).order_by("position")}
        stats = {row["step_id"]: row for row in (
            Delivery.objects.for_tenant(tenant)
            .filter(period.q("sent_at"), journey=journey, state=Delivery.State.SENT)
            .annotate(converted=_goal_reached(tenant, journey, "sent_at"),
                      revenue=_revenue_in_window(tenant, journey, "sent_at"))
            .values("step_id")
            .annotate(sent=Count("pk"), delivered=Count("pk", filter=Q(delivered_at__isnull=False)),
                      opened=Count("pk", filter=Q(opened_at__isnull=False)),
                      clicked=Count("pk", filter=Q(clicked_at__isnull=False)),
                      bounced=Count("pk", filter=Q(bounced_at__isnull=False)),
                      complained=Count("pk", filter=Q(complained_at__isnull=False)),
                      conv=Count("pk", filter=Q(converted=True)), total=Sum("revenue"))
            .order_by())}
        rows = []
        for step in steps.values():
            s = stats.get(step.pk, {})
            sent = s.get("sent", 0)
            rows.append({
                "step": step, "sent": sent, "delivered": s.get("delivered", 0), "opened": s.get("opened", 0),
                "clicked": s.get("clicked", 0), "bounced": s.get("bounced", 0), "complained": s.get("complained", 0),
                "converted": s.get("conv", 0), "revenue": Decimal(s.get("total") or 0).quantize(Decimal("0.01")),
                "delivered_rate": ratio(s.get("delivered", 0), sent), "open_rate": ratio(s.get("opened", 0), sent),
                "click_rate": ratio(s.get("clicked", 0), sent), "conversion_rate": ratio(s.get("conv", 0), sent),
            })
        out.append({
            "journey": journey,
            "enrolled": sum(states.get(s, 0) for s in TREATED),
            "holdout": states.get(Enrollment.State.HOLDOUT, 0),
            "rejected": states.get(Enrollment.State.REJECTED, 0),
            "steps": rows,
        })
    return out
