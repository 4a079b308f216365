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

from django.db import connection
from django.db.models import (
    Case,
    Count,
    Q,
    QuerySet,
    Value,
    When,
)

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


def _plus_window(column: str, window: dt.timedelta) -> tuple[str, list]:
    """SQL for `column + window`, and its parameters, on PostgreSQL or SQLite."""
    seconds = int(window.total_seconds())
    if connection.vendor == "postgresql":
        return f"{column} + %s * INTERVAL '1 second'", [seconds]
    return f"datetime({column}, %s)", [f"+{seconds} seconds"]


def _outcomes(source: QuerySet, start: str, tenant: Tenant, journey: Journey, since: dt.datetime,
              last: dt.datetime, keys: tuple[str, ...], flags: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Per `keys`: how many source rows, how many reached the goal within the window after `start`,
    the net revenue of the orders paid in that window, its sum of squares, and per flag column how
    many rows have it set.

    `source` is a tenant-scoped queryset (enrollments or deliveries). Its rows are joined to the
    store's orders paid in (since, last] — a range of order_tenant_paid_idx, read from the index
    alone — so the database reads each order once, instead of looking up every row's customer.
    """
    inner, params = source.values("id", "customer_id", start, *keys, *flags).query.sql_with_params()
    ops = connection.ops
    window_end, window_params = _plus_window(f"s.{start}", journey.attribution_window)
    orders = Order._meta.db_table
    grouped = ", ".join(f"s.{c}" for c in ("id", "customer_id", start, *keys, *flags))
    if journey.goal_event in ORDER_GOALS or not journey.goal_event:
        goal, goal_params = "CASE WHEN COUNT(o.id) > 0 THEN 1 ELSE 0 END", []
    else:
        event_end, event_params = _plus_window(f"s.{start}", journey.attribution_window)
        goal = (f"CASE WHEN EXISTS (SELECT 1 FROM {Event._meta.db_table} v WHERE v.tenant_id = %s "  # noqa: S608
                f"AND v.customer_id = s.customer_id AND v.type = %s AND v.occurred_at > s.{start} "
                f"AND v.occurred_at <= {event_end}) THEN 1 ELSE 0 END")
        goal_params = [tenant.pk, journey.goal_event, *event_params]
    flag_sql = "".join(f", CASE WHEN s.{f} IS NULL THEN 0 ELSE 1 END AS {f}" for f in flags)
    flag_sums = "".join(f", SUM(y.{f}) AS {f}" for f in flags)
    key_list = ", ".join(f"y.{k}" for k in keys)
    sql = (
        f"SELECT {key_list}, COUNT(*) AS n, SUM(y.goal) AS converted, SUM(y.net) AS total, "  # noqa: S608
        f"SUM(y.net * y.net) AS squares{flag_sums} FROM ("
        f"SELECT {', '.join(f's.{k}' for k in keys)}{flag_sql}, {goal} AS goal, "
        f"COALESCE(SUM(CASE WHEN o.currency = %s THEN o.total - o.refunded_total ELSE 0 END), 0) AS net "
        f"FROM ({inner}) s LEFT JOIN {orders} o ON o.tenant_id = %s AND o.customer_id = s.customer_id "
        f"AND o.cancelled_at IS NULL AND o.paid_at > s.{start} AND o.paid_at <= {window_end} "
        f"AND o.paid_at > %s AND o.paid_at <= %s "
        f"GROUP BY {grouped}) y GROUP BY {key_list}"
    )
    all_params = [*goal_params, tenant.currency, *params, tenant.pk, *window_params,
                  ops.adapt_datetimefield_value(since), ops.adapt_datetimefield_value(last)]
    with connection.cursor() as cursor:
        cursor.execute(sql, all_params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


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
    source = (enrolled.filter(enrolled_at__lte=closed_before).order_by()
              .annotate(held=Case(When(state=Enrollment.State.HOLDOUT, then=Value(1)), default=Value(0))))
    last = min(period.until, closed_before) + journey.attribution_window
    groups = {1: Group(0, 0, Decimal(0), Decimal(0)), 0: Group(0, 0, Decimal(0), Decimal(0))}
    for row in _outcomes(source, "enrolled_at", tenant, journey, period.since, last, keys=("held",)):
        groups[int(row["held"])] = Group(row["n"], int(row["converted"] or 0), Decimal(row["total"] or 0),
                                         Decimal(row["squares"] or 0))
    treated, holdout = groups[0], groups[1]
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
    """Every running journey with a holdout group, and every journey that held customers out in the period."""
    held = set(Enrollment.objects.for_tenant(tenant).filter(period.q("enrolled_at"), state=Enrollment.State.HOLDOUT)
               .values_list("journey_id", flat=True).distinct())
    running = Q(holdout_percent__gt=0, status__in=[Journey.Status.ACTIVE, Journey.Status.PAUSED])
    journeys = Journey.objects.for_tenant(tenant).filter(running | Q(pk__in=held)).order_by("-priority", "name")
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
        sent = (Delivery.objects.for_tenant(tenant).filter(period.q("sent_at"), journey=journey,
                                                            state=Delivery.State.SENT).order_by())
        rows = _outcomes(sent, "sent_at", tenant, journey, period.since, period.until + journey.attribution_window,
                         keys=("step_id",), flags=("delivered_at", "opened_at", "clicked_at", "bounced_at",
                                                   "complained_at"))
        stats = {row["step_id"]: {**row, "sent": row["n"], "delivered": row["delivered_at"],
                                  "opened": row["opened_at"], "clicked": row["clicked_at"],
                                  "bounced": row["bounced_at"], "complained": row["complained_at"],
                                  "conv": row["converted"]}
                 for row in rows}
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
