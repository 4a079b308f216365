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

Both read the quarter hours beat has settled from journeys' OutcomeBucket rows and join live only
the rest: the period's ragged edges, and what is newer than the journey's last settle (for the
lift, the hour or so since). A funnel's sends still in their window come from the "open" buckets
beat refreshes every five minutes (so those figures are at most that old), and only what was sent
since the last refresh is joined live. See journeys/rollups.py for what a bucket keeps.
"""

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Count, Sum

from journeys.models import Enrollment, Journey, OutcomeBucket, Step
from journeys.rollups import (
    STEP_FLAGS,
    TREATED,
    ceil_bucket,
    enrollments_measured,
    floor_bucket,
    outcomes,
    sends,
)
from lifecycle.models import Tenant
from lifecycle.stats import (
    CONFIDENCE,
    Difference,
    GroupSums,
    Verdict,
    lift_verdict,
    newcombe_difference,
    welch_difference,
)
from workspace.metrics import Period, ratio

CENT = Decimal("0.01")
SUMS = {"n": Sum("count"), "converted": Sum("converted"), "total": Sum("revenue"), "squares": Sum("revenue_squares"),
        **{flag: Sum(flag.removesuffix("_at")) for flag in STEP_FLAGS}}


def _ranges(since: dt.datetime, until: dt.datetime, marks: list[tuple[str, dt.datetime | None]]
            ) -> tuple[list[tuple[str, dt.datetime, dt.datetime]], list[tuple[dt.datetime, dt.datetime]]]:
    """[since, until) as bucket reads and live ranges. `marks` are (kind, covered until), in order:
    kind's buckets cover the quarter hours from the previous mark up to this one."""
    low, high = ceil_bucket(since), floor_bucket(until)
    reads, cursor = [], low
    for kind, upto in marks:
        if upto is None:
            break
        end = min(high, upto)
        if end > cursor:
            reads.append((kind, cursor, end))
            cursor = end
    if not reads:
        return [], [(since, until)]
    return reads, [(a, b) for a, b in ((since, low), (cursor, until)) if a < b]


def _add(into: dict[Any, dict[str, Any]], key: Any, row: dict[str, Any]) -> None:
    totals = into.setdefault(key, {})
    for name, value in row.items():
        if name in ("total", "squares"):  # SQLite's raw sums are floats: to the cent (squares: to 4 places)
            exact = Decimal(str(value or 0)).quantize(CENT if name == "total" else CENT * CENT)
            totals[name] = totals.get(name, Decimal(0)) + exact
        elif name in SUMS:
            totals[name] = totals.get(name, 0) + int(value or 0)


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
    """Treated vs held-out customers enrolled in the period whose attribution window has closed.

    Settled quarter hours come from the outcome buckets; the edges of the period and what closed
    since the last settle are joined live (journeys/rollups.py)."""
    closed_before = now - journey.attribution_window
    maturing = (Enrollment.objects.for_tenant(tenant)
                .filter(period.q("enrolled_at"), journey=journey, state__in=[*TREATED, Enrollment.State.HOLDOUT],
                        enrolled_at__gt=closed_before).count())
    sums: dict[int, dict[str, Any]] = {}
    reads, live = _ranges(period.since, min(period.until, closed_before + dt.timedelta(microseconds=1)),
                          [(OutcomeBucket.Kind.LIFT, journey.outcomes_settled_until)])
    for kind, low, high in reads:
        for row in (OutcomeBucket.objects.for_tenant(tenant)
                    .filter(journey=journey, kind=kind, bucket__gte=low, bucket__lt=high)
                    .values("held").annotate(**{k: SUMS[k] for k in ("n", "converted", "total", "squares")})
                    .order_by()):
            _add(sums, int(row["held"]), row)
    for since, until in live:
        source = enrollments_measured(tenant, journey).filter(enrolled_at__gte=since, enrolled_at__lt=until)
        for row in outcomes(source, "enrolled_at", tenant, journey, since, until + journey.attribution_window,
                            keys=("held",)):
            _add(sums, int(row["held"]), row)
    groups = {held: Group(int(row.get("n", 0)), int(row.get("converted", 0)), Decimal(row.get("total", 0)),
                          Decimal(row.get("squares", 0)))
              for held, row in sums.items()}
    groups.setdefault(0, Group(0, 0, Decimal(0), Decimal(0)))
    groups.setdefault(1, Group(0, 0, Decimal(0), Decimal(0)))
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


def _held_out_in(tenant: Tenant, journey: Journey, period: Period) -> bool:
    """Did the journey hold anyone out in the period? Its buckets say for the settled part."""
    if OutcomeBucket.objects.for_tenant(tenant).filter(journey=journey, kind=OutcomeBucket.Kind.LIFT, held=True,
                                                       bucket__gte=period.since, bucket__lt=period.until).exists():
        return True
    since = max(period.since, journey.outcomes_settled_until or period.since)
    return (Enrollment.objects.for_tenant(tenant)
            .filter(journey=journey, enrolled_at__gte=since, enrolled_at__lt=period.until,
                    state=Enrollment.State.HOLDOUT).exists())


def lifts(tenant: Tenant, period: Period, now: dt.datetime) -> list[Lift]:
    """Every running journey with a holdout group, and every journey that held customers out in the period."""
    running = (Journey.Status.ACTIVE, Journey.Status.PAUSED)
    journeys = [journey for journey in Journey.objects.for_tenant(tenant).order_by("-priority", "name")
                if (journey.holdout_percent > 0 and journey.status in running)
                or _held_out_in(tenant, journey, period)]
    return [journey_lift(tenant, journey, period, now) for journey in journeys]


# --- funnels ------------------------------------------------------------------------------


def journey_funnels(tenant: Tenant, period: Period) -> list[dict[str, Any]]:
    """Per journey: enrolled in the period, then per step the emails sent in the period and what came of them."""
    out = []
    # Each journey's enrollments by state: one range of enrollment_period_state_idx, read from the index.
    for journey in Journey.objects.for_tenant(tenant).order_by("-priority", "name"):
        states = dict(Enrollment.objects.for_tenant(tenant).filter(period.q("enrolled_at"), journey=journey)
                      .values("state").annotate(n=Count("pk")).values_list("state", "n").order_by())
        steps = {s.pk: s for s in Step.objects.for_tenant(tenant).filter(journey=journey).order_by("position")}
        sums: dict[int, dict[str, Any]] = {}
        settled, still_open = journey.outcomes_settled_until, journey.outcomes_open_until
        marks = [(OutcomeBucket.Kind.STEP, settled)]
        if settled and still_open and still_open > settled:
            marks.append((OutcomeBucket.Kind.OPEN, still_open))
        reads, live = _ranges(period.since, period.until, marks)
        for kind, low, high in reads:
            for row in (OutcomeBucket.objects.for_tenant(tenant)
                        .filter(journey=journey, kind=kind, bucket__gte=low, bucket__lt=high)
                        .values("step_id").annotate(**SUMS).order_by()):
                _add(sums, row["step_id"], row)
        for since, until in live:
            source = sends(tenant, journey).filter(sent_at__gte=since, sent_at__lt=until)
            for row in outcomes(source, "sent_at", tenant, journey, since, until + journey.attribution_window,
                                keys=("step_id",), flags=STEP_FLAGS):
                _add(sums, row["step_id"], row)
        stats = {step_id: {**row, "sent": row["n"], "delivered": row["delivered_at"], "opened": row["opened_at"],
                           "clicked": row["clicked_at"], "bounced": row["bounced_at"],
                           "complained": row["complained_at"], "conv": row["converted"]}
                 for step_id, row in sums.items()}
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
        if not states and not any(row["sent"] for row in rows):
            continue  # nothing in the period
        out.append({
            "journey": journey,
            "enrolled": sum(states.get(s, 0) for s in TREATED),
            "holdout": states.get(Enrollment.State.HOLDOUT, 0),
            "rejected": states.get(Enrollment.State.REJECTED, 0),
            "steps": rows,
        })
    return out
