"""The store home's figures: customers and revenue, feedback, support, adoption, loyalty and referrals.

Reads only, each starting from `Model.objects.for_tenant(tenant)`, each bounded by the period a
marketer picked and served by an index (see bench/dashboards for their times on a store with
a million orders). Journeys (funnels and lift) are in metrics_journeys.py.

Definitions, in the words the page uses:
- new customers: customers whose first paid order was placed in the period;
- orders and revenue: orders paid in the period (not cancelled);
- repeat purchase rate: of those, the share with a second paid order so far;
- time to second order: days from the first order to the second, for those who have one;
- lifetime value by cohort: net revenue (paid, uncancelled, less refunds, in the store's
  currency) per customer of a first-order month, by months since that first order;
- money counts orders in the store's currency only (no FX guessing), like Customer.total_spent.
"""

import contextlib
import dataclasses
import datetime as dt
import statistics
import zoneinfo
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Avg, Count, F, FloatField, Func, OuterRef, Q, Subquery, Sum
from django.db.models.functions import TruncMonth, TruncWeek

from feedback.models import SurveyResponse
from lifecycle.models import Customer, Event, Order, Tenant
from loyalty.models import LedgerEntry, LoyaltyAccount, Redemption, Reward
from loyalty.models import Program as LoyaltyProgram
from referrals.models import Click, Referral
from referrals.models import Program as ReferralProgram
from referrals.selectors import COUNTED, referral_metrics

SUPPORT_EVENT = "support.contacted"
ADOPTION_EVENTS = ("product.registered", "feature.used")
# Time to second order, in days: the histogram's buckets (upper bounds, inclusive).
GAP_BUCKETS = [(7, "0–7 days"), (14, "8–14"), (30, "15–30"), (60, "31–60"), (90, "61–90"), (180, "91–180"),
               (None, "over 180")]
# Cohort heat table: at most this many months since the first order.
COHORT_MONTHS = 12


@dataclasses.dataclass(frozen=True)
class Period:
    """[since, until) in UTC, chosen as whole days in the store's time zone."""

    since: dt.datetime
    until: dt.datetime
    zone: zoneinfo.ZoneInfo

    @property
    def days(self) -> int:
        return round((self.until - self.since) / dt.timedelta(days=1))

    @property
    def weekly(self) -> bool:
        """Weeks for up to ~6 months, months beyond: a chart of 50+ bars says nothing more."""
        return self.days <= 190

    def q(self, field: str) -> Q:
        return Q(**{f"{field}__gte": self.since, f"{field}__lt": self.until})

    def bucket(self, field: str):
        return (TruncWeek if self.weekly else TruncMonth)(field, tzinfo=self.zone)


@contextlib.contextmanager
def dashboard_reads() -> Iterator[None]:
    """One read transaction for a page's figures, without PostgreSQL's JIT.

    The figures are short aggregates whose cost estimates cross jit_above_cost on big stores;
    compiling them took longer than running them (seconds against tens of milliseconds).
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
                # Grouping a year of rows by week sorts in memory instead of spilling to disk.
                cursor.execute("SET LOCAL work_mem = '32MB'")
        yield


def ratio(part: int | float, whole: int | float) -> float | None:
    return part / whole if whole else None


class DaysBetween(Func):
    """(second − first) in days, as a number, on PostgreSQL or SQLite."""

    output_field = FloatField()
    arity = 2

    def as_postgresql(self, compiler, connection, **extra_context):
        return self._sql(compiler, connection, "pg")

    def as_sqlite(self, compiler, connection, **extra_context):
        return self._sql(compiler, connection, "sqlite")

    def _sql(self, compiler, connection, vendor: str):
        (first, first_params), (second, second_params) = (compiler.compile(e) for e in self.source_expressions)
        if vendor == "pg":
            return f"(EXTRACT(EPOCH FROM ({second} - {first})) / 86400.0)", [*second_params, *first_params]
        return f"(julianday({second}) - julianday({first}))", [*second_params, *first_params]


def _money(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(Decimal("0.01"))


def _local_date(value: dt.datetime | dt.date, zone: zoneinfo.ZoneInfo) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.astimezone(zone).date() if value.tzinfo else value.date()
    return value


# --- customers and revenue --------------------------------------------------------------


def customer_metrics(tenant: Tenant, period: Period, among: list[int] | None = None) -> dict[str, Any]:
    """New customers, repeat rate, orders and revenue, and the time to a second order; of the customers
    `among` (a segment's, journeys.segments) when given."""
    cohort = Customer.objects.for_tenant(tenant).filter(period.q("first_order_at"))
    orders_in = Order.objects.for_tenant(tenant).filter(period.q("paid_at"), cancelled_at__isnull=True)
    if among is not None:
        cohort, orders_in = cohort.filter(pk__in=among), orders_in.filter(customer_id__in=among)
    counts = cohort.aggregate(new=Count("pk"), repeat=Count("pk", filter=Q(order_count__gte=2)))
    orders = orders_in.aggregate(n=Count("pk"), revenue=Sum(F("total") - F("refunded_total"),
                                                            filter=Q(currency=tenant.currency)))
    return {
        "new_customers": counts["new"],
        "repeat_customers": counts["repeat"],
        "repeat_rate": ratio(counts["repeat"], counts["new"]),
        "orders": orders["n"],
        "revenue": _money(orders["revenue"]),
        "time_to_second": time_to_second_order(tenant, period, among),
    }


def time_to_second_order(tenant: Tenant, period: Period, among: list[int] | None = None) -> dict[str, Any]:
    """For new customers of the period who ordered again: days to the second order, as a histogram."""
    orders = Order.objects.for_tenant(tenant).filter(paid_at__isnull=False, cancelled_at__isnull=True)
    repeaters = Customer.objects.for_tenant(tenant).filter(period.q("first_order_at"), order_count__gte=2)
    if among is not None:
        repeaters = repeaters.filter(pk__in=among)
    # With exactly two orders the second is the last (an aggregate the customer row keeps); only
    # customers with three or more need a look at their orders (order_tenant_customer_idx).
    # The database gives days as numbers: turning a year's pairs of timestamps into Python datetimes
    # took longer than the queries themselves.
    second = (orders.filter(customer_id=OuterRef("pk"), placed_at__gt=OuterRef("first_order_at"))
              .order_by("placed_at").values("placed_at")[:1])
    gaps = [*repeaters.filter(order_count=2).annotate(days=DaysBetween("first_order_at", "last_order_at"))
            .values_list("days", flat=True),
            *repeaters.filter(order_count__gt=2).annotate(second=Subquery(second))
            .annotate(days=DaysBetween("first_order_at", "second")).values_list("days", flat=True)]
    days = sorted(float(d) for d in gaps if d is not None)
    buckets = []
    for bound, label in GAP_BUCKETS:
        low = buckets[-1]["bound"] if buckets else None
        n = sum(1 for d in days if (low is None or d > low) and (bound is None or d <= bound))
        buckets.append({"label": label, "bound": bound, "customers": n})
    for b in buckets:
        b["share"] = ratio(b["customers"], len(days))
    return {
        "customers": len(days),
        "median_days": round(statistics.median(days), 1) if days else None,
        "buckets": buckets,
    }


def _month_start(value: dt.date) -> dt.date:
    return value.replace(day=1)


def _months_between(a: dt.date, b: dt.date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def ltv_cohorts(tenant: Tenant, period: Period, now: dt.datetime) -> dict[str, Any]:
    """Cumulative net revenue per customer, by first-order month and months since it.

    A cell is blank where the cohort is not that old yet (not zero: nobody could have bought).
    """
    zone = period.zone
    sizes = dict(Customer.objects.for_tenant(tenant).filter(period.q("first_order_at"))
                 .annotate(cohort=TruncMonth("first_order_at", tzinfo=zone)).values("cohort")
                 .annotate(n=Count("pk")).values_list("cohort", "n").order_by())
    revenue = (Order.objects.for_tenant(tenant)
               # A cohort's orders were all paid on or after its first order: the paid_at bound lets the
               # database read one range of order_tenant_paid_idx instead of every order of the store.
               .filter(paid_at__gte=period.since, cancelled_at__isnull=True, currency=tenant.currency,
                       customer__first_order_at__gte=period.since, customer__first_order_at__lt=period.until)
               .annotate(cohort=TruncMonth("customer__first_order_at", tzinfo=zone),
                         month=TruncMonth("placed_at", tzinfo=zone))
               .values("cohort", "month").annotate(net=Sum(F("total") - F("refunded_total"))).order_by())
    by_cohort: dict[dt.date, dict[int, Decimal]] = {}
    for row in revenue:
        cohort, month = _local_date(row["cohort"], zone), _local_date(row["month"], zone)
        age = _months_between(cohort, month)
        if 0 <= age < COHORT_MONTHS:
            by_cohort.setdefault(cohort, {})[age] = by_cohort.setdefault(cohort, {}).get(age, 0) + (row["net"] or 0)
    this_month = _month_start(now.astimezone(zone).date())
    rows = []
    for cohort_value, size in sorted(sizes.items(), key=lambda kv: kv[0]):
        cohort = _local_date(cohort_value, zone)
        ages = min(COHORT_MONTHS, _months_between(cohort, this_month) + 1)
        running, cells = Decimal(0), []
        for age in range(COHORT_MONTHS):
            if age >= ages:
                cells.append(None)
                continue
            running += by_cohort.get(cohort, {}).get(age, Decimal(0))
            cells.append(_money(running / size))
        rows.append({"cohort": cohort, "customers": size, "cells": cells})
    top = max((c for r in rows for c in r["cells"] if c is not None), default=Decimal(0))
    return {"months": list(range(COHORT_MONTHS)), "rows": rows, "max": top}


# --- feedback, support, adoption ------------------------------------------------------------


def feedback_over_time(tenant: Tenant, period: Period) -> dict[str, Any]:
    """NPS, CSAT (% satisfied, 4–5) and CES (average, 1 = no effort) per week or month of answering."""
    nps, csat, ces = (Q(survey__kind=k, score__isnull=False) for k in ("nps", "csat", "ces"))
    aggregates = {
        "nps_n": Count("pk", filter=nps), "promoters": Count("pk", filter=nps & Q(score__gte=9)),
        "detractors": Count("pk", filter=nps & Q(score__lte=6)),
        "csat_n": Count("pk", filter=csat), "csat_ok": Count("pk", filter=csat & Q(score__gte=4)),
        "ces_n": Count("pk", filter=ces), "ces_avg": Avg("score", filter=ces),
    }
    answers = SurveyResponse.objects.for_tenant(tenant).filter(period.q("answered_at"),
                                                               state=SurveyResponse.State.FINAL)

    def summary(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "nps": round(100 * (row["promoters"] - row["detractors"]) / row["nps_n"], 1) if row["nps_n"] else None,
            "nps_n": row["nps_n"], "promoters": row["promoters"], "detractors": row["detractors"],
            "csat": round(100 * row["csat_ok"] / row["csat_n"], 1) if row["csat_n"] else None,
            "csat_n": row["csat_n"],
            "ces": round(row["ces_avg"], 2) if row["ces_avg"] is not None else None, "ces_n": row["ces_n"],
        }

    series = [{"bucket": _local_date(row.pop("bucket"), period.zone), **summary(row)}
              for row in answers.annotate(bucket=period.bucket("answered_at")).values("bucket")
              .annotate(**aggregates).order_by("bucket")]
    return {"overall": summary(answers.aggregate(**aggregates)), "series": series}


def _customers_with(tenant: Tenant, types: tuple[str, ...]):
    # event_tenant_type_idx: the customers with such an event, as one index range per type.
    return Event.objects.for_tenant(tenant).filter(type__in=types, customer_id__isnull=False).values("customer_id")


def repeat_by_event(tenant: Tenant, period: Period, types: tuple[str, ...]) -> dict[str, Any]:
    """New customers of the period split by whether they have one of these events: repeat rate of each.

    Two aggregates, all and those with the event (a semi-join on event_tenant_type_idx); the rest is
    the difference. An EXISTS inside each aggregate would probe the events once per customer and count.
    """
    cohort = Customer.objects.for_tenant(tenant).filter(period.q("first_order_at"))
    counts = {"n": Count("pk"), "repeat": Count("pk", filter=Q(order_count__gte=2))}
    everyone = cohort.aggregate(**counts)
    flagged = cohort.filter(pk__in=_customers_with(tenant, types)).aggregate(**counts)
    without = {"n": everyone["n"] - flagged["n"], "repeat": everyone["repeat"] - flagged["repeat"]}
    return {
        "with": {"customers": flagged["n"], "repeat": flagged["repeat"], "rate": ratio(flagged["repeat"], flagged["n"])},
        "without": {"customers": without["n"], "repeat": without["repeat"],
                    "rate": ratio(without["repeat"], without["n"])},
        "share": ratio(flagged["n"], everyone["n"]),
    }


def events_over_time(tenant: Tenant, period: Period, types: tuple[str, ...]) -> list[dict[str, Any]]:
    """Customers with each event type, per week or month (a customer counts once per bucket and type)."""
    rows = (Event.objects.for_tenant(tenant).filter(period.q("occurred_at"), type__in=types)
            .annotate(bucket=period.bucket("occurred_at")).values("bucket", "type")
            .annotate(customers=Count("customer_id", distinct=True)).order_by("bucket", "type"))
    series: dict[dt.date, dict[str, Any]] = {}
    for row in rows:
        bucket = _local_date(row["bucket"], period.zone)
        series.setdefault(bucket, {"bucket": bucket, **{t: 0 for t in types}})[row["type"]] = row["customers"]
    return list(series.values())


# --- loyalty and referrals ----------------------------------------------------------------


def loyalty_metrics(tenant: Tenant, period: Period) -> dict[str, Any]:
    """Members, the points the store owes (available + pending), and what moved in the period."""
    program = LoyaltyProgram.objects.for_tenant(tenant).first()
    accounts = LoyaltyAccount.objects.for_tenant(tenant).aggregate(
        members=Count("pk"), new=Count("pk", filter=period.q("created_at")), balance=Sum("balance"),
        pending=Sum("pending"), debt=Sum("debt"))
    entries = LedgerEntry.objects.for_tenant(tenant).filter(
        period.q("created_at"), kind__in=[LedgerEntry.Kind.EARN, LedgerEntry.Kind.REDEEM, LedgerEntry.Kind.EXPIRE])
    moved = entries.aggregate(earned=Sum("amount", filter=Q(kind=LedgerEntry.Kind.EARN)),
                              redeemed=Sum("amount", filter=Q(kind=LedgerEntry.Kind.REDEEM)),
                              expired=Sum("amount", filter=Q(kind=LedgerEntry.Kind.EXPIRE)))
    redemptions = Redemption.objects.for_tenant(tenant).filter(period.q("created_at")).aggregate(
        n=Count("pk"), customers=Count("customer_id", distinct=True))
    series = [{"bucket": _local_date(row["bucket"], period.zone), "earned": row["earned"] or 0,
               "redeemed": -(row["redeemed"] or 0)}
              for row in entries.filter(kind__in=[LedgerEntry.Kind.EARN, LedgerEntry.Kind.REDEEM])
              .annotate(bucket=period.bucket("created_at")).values("bucket")
              .annotate(earned=Sum("amount", filter=Q(kind=LedgerEntry.Kind.EARN)),
                        redeemed=Sum("amount", filter=Q(kind=LedgerEntry.Kind.REDEEM))).order_by("bucket")]
    liability_points = (accounts["balance"] or 0) + (accounts["pending"] or 0)
    # What the points are worth: the cheapest fixed discount's rate, when the store has one.
    reward = (Reward.objects.for_tenant(tenant).filter(active=True, kind=Reward.Kind.FIXED_DISCOUNT,
                                                       currency=tenant.currency, value__gt=0)
              .order_by(F("value") / F("cost")).first()) if program else None
    value = _money(Decimal(liability_points) * reward.value / reward.cost) if reward else None
    return {
        "enabled": bool(program and program.enabled), "members": accounts["members"], "new_members": accounts["new"],
        "available": accounts["balance"] or 0, "pending": accounts["pending"] or 0, "debt": accounts["debt"] or 0,
        "liability_points": liability_points, "liability_value": value, "liability_reward": reward,
        "earned": moved["earned"] or 0, "redeemed": -(moved["redeemed"] or 0), "expired": -(moved["expired"] or 0),
        "redemptions": redemptions["n"], "redeeming_customers": redemptions["customers"], "series": series,
    }


def referral_summary(tenant: Tenant, period: Period) -> dict[str, Any]:
    """Clicks, conversions, revenue and reward cost (referrals' own definitions), and by week or month."""
    figures = referral_metrics(tenant=tenant, since=period.since, until=period.until)
    clicks = {(_local_date(r["bucket"], period.zone)): r["n"] for r in Click.objects.for_tenant(tenant)
              .filter(period.q("at"), by_advocate=False).annotate(bucket=period.bucket("at")).values("bucket")
              .annotate(n=Count("pk")).order_by()}
    conversions = {(_local_date(r["bucket"], period.zone)): (r["n"], r["revenue"]) for r in Referral.objects
                   .for_tenant(tenant).filter(period.q("converted_at"), state__in=COUNTED)
                   .annotate(bucket=period.bucket("converted_at")).values("bucket")
                   .annotate(n=Count("pk"), revenue=Sum("order_total")).order_by()}
    series = [{"bucket": b, "clicks": clicks.get(b, 0), "conversions": conversions.get(b, (0, 0))[0],
               "revenue": _money(conversions.get(b, (0, 0))[1])} for b in sorted({*clicks, *conversions})]
    return {**figures, "enabled": ReferralProgram.objects.for_tenant(tenant).filter(active=True).exists(),
            "revenue": _money(figures["revenue"]), "reward_cost": _money(figures["reward_cost"]), "series": series}
