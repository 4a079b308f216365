"""Outcome buckets: what each journey's enrollments and emails came to, once their window closed.

A journey's lift and funnel join its enrollments and sends to the orders the customers paid in
the attribution window after them. Done live for a year of a big store, that join reads every
enrollment, email and order of the year: tens of seconds at a million orders. Once an
enrollment's or a send's window has closed (plus GRACE for late tracking events), its outcome no
longer changes, so `outcomes_settle` adds it into an `OutcomeBucket` of its quarter hour, once;
the dashboards sum the buckets and join live only what is still open, or newer than the last
settle (workspace/metrics_journeys.py).

What a bucket keeps: for "lift", enrollments (treated and held out) with how many reached the
goal, the net revenue of their orders in the window and its sum of squares (for Welch's
interval); for "step", the emails sent with how many were delivered, opened, clicked, bounced,
complained and converted, and their revenue. Revenue is net of refunds as it stood when the
window closed, in the store's currency.

Beat runs `journeys.settle_outcomes` every five minutes. History written with past timestamps
after its buckets were settled (`simulate_store`, `seed_scale`, a restore) needs
`manage.py refresh_rollups --rebuild`.
"""

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, F, Min, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL

from lifecycle import clock
from lifecycle.models import Event, Order, Tenant

from .models import Delivery, Enrollment, Journey, OutcomeBucket

BUCKET = dt.timedelta(minutes=15)
# Opens, clicks and bounces still trickle in after a send: a closed window waits this much longer.
GRACE = dt.timedelta(hours=1)
# A first settle (or a rebuild) walks a journey's history this much at a time, a transaction each.
CHUNK = dt.timedelta(days=14)
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
TREATED = (Enrollment.State.ACTIVE, Enrollment.State.COMPLETED, Enrollment.State.EXITED)
MEASURED = (*TREATED, Enrollment.State.HOLDOUT)
ORDER_GOALS = ("order.paid", "order.placed")
STEP_FLAGS = ("delivered_at", "opened_at", "clicked_at", "bounced_at", "complained_at")


def floor_bucket(value: dt.datetime) -> dt.datetime:
    return EPOCH + ((value - EPOCH) // BUCKET) * BUCKET


def ceil_bucket(value: dt.datetime) -> dt.datetime:
    floor = floor_bucket(value)
    return floor if floor == value else floor + BUCKET


def settle_horizon(journey: Journey, now: dt.datetime) -> dt.datetime:
    """Everything enrolled or sent before this instant has a closed window (and GRACE more)."""
    return floor_bucket(now - journey.attribution_window - GRACE)


# --- the live join -------------------------------------------------------------------------


def _plus_window(column: str, window: dt.timedelta) -> tuple[str, list]:
    """SQL for `column + window`, and its parameters, on PostgreSQL or SQLite."""
    seconds = int(window.total_seconds())
    if connection.vendor == "postgresql":
        return f"{column} + %s * INTERVAL '1 second'", [seconds]
    return f"datetime({column}, %s)", [f"+{seconds} seconds"]


def _bucket_of(model: type, column: str) -> RawSQL:
    """The quarter hour (UTC) a row's `column` falls in."""
    qualified = f'"{model._meta.db_table}"."{column}"'
    if connection.vendor == "postgresql":
        return RawSQL(f"date_bin('15 minutes', {qualified}, TIMESTAMPTZ '2000-01-01 00:00:00+00')", [])  # noqa: S611 - our own column names
    return RawSQL(f"datetime((CAST(strftime('%%s', {qualified}) AS INTEGER) / 900) * 900, 'unixepoch')", [])  # noqa: S611


def outcomes(source: QuerySet, start: str, tenant: Tenant, journey: Journey, since: dt.datetime,
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


def enrollments_measured(tenant: Tenant, journey: Journey) -> QuerySet:
    """A journey's treated and held-out enrollments, each with `held` 1 or 0."""
    return (Enrollment.objects.for_tenant(tenant).filter(journey=journey, state__in=MEASURED).order_by()
            .annotate(held=Case(When(state=Enrollment.State.HOLDOUT, then=Value(1)), default=Value(0))))


def sends(tenant: Tenant, journey: Journey) -> QuerySet:
    # sent_at is set with the state: the condition lets delivery_journey_sent_idx (partial) serve.
    return (Delivery.objects.for_tenant(tenant)
            .filter(journey=journey, state=Delivery.State.SENT, sent_at__isnull=False).order_by())


# --- settling --------------------------------------------------------------------------------


def _as_utc(value: Any) -> dt.datetime:
    if isinstance(value, str):  # SQLite's datetime() gives text
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _buckets(tenant: Tenant, journey: Journey, start: dt.datetime, end: dt.datetime) -> list[OutcomeBucket]:
    """The buckets of [start, end): both bounds on the quarter hour, end at or before the horizon."""
    last = end + journey.attribution_window
    made = []
    lift_source = (enrollments_measured(tenant, journey).filter(enrolled_at__gte=start, enrolled_at__lt=end)
                   .annotate(bucket=_bucket_of(Enrollment, "enrolled_at")))
    for row in outcomes(lift_source, "enrolled_at", tenant, journey, start, last, keys=("held", "bucket")):
        made.append(OutcomeBucket(
            tenant=tenant, journey=journey, kind=OutcomeBucket.Kind.LIFT, bucket=_as_utc(row["bucket"]),
            held=bool(row["held"]), count=row["n"], converted=int(row["converted"] or 0),
            revenue=Decimal(row["total"] or 0), revenue_squares=Decimal(row["squares"] or 0)))
    return made + _step_buckets(tenant, journey, start, end, OutcomeBucket.Kind.STEP)


def _step_buckets(tenant: Tenant, journey: Journey, start: dt.datetime, end: dt.datetime,
                  kind: str) -> list[OutcomeBucket]:
    """Each step's sends of [start, end) by quarter hour, with what came of them so far."""
    made = []
    step_source = (sends(tenant, journey).filter(sent_at__gte=start, sent_at__lt=end)
                   .annotate(bucket=_bucket_of(Delivery, "sent_at")))
    for row in outcomes(step_source, "sent_at", tenant, journey, start, end + journey.attribution_window,
                        keys=("step_id", "bucket"), flags=STEP_FLAGS):
        made.append(OutcomeBucket(
            tenant=tenant, journey=journey, kind=kind, step_id=row["step_id"],
            bucket=_as_utc(row["bucket"]), count=row["n"], converted=int(row["converted"] or 0),
            revenue=Decimal(row["total"] or 0), revenue_squares=Decimal(row["squares"] or 0),
            delivered=row["delivered_at"] or 0, opened=row["opened_at"] or 0, clicked=row["clicked_at"] or 0,
            bounced=row["bounced_at"] or 0, complained=row["complained_at"] or 0))
    return made


def _first_activity(tenant: Tenant, journey: Journey) -> dt.datetime | None:
    firsts = [Enrollment.objects.for_tenant(tenant).filter(journey=journey).aggregate(t=Min("enrolled_at"))["t"],
              Delivery.objects.for_tenant(tenant).filter(journey=journey, sent_at__isnull=False)
              .aggregate(t=Min("sent_at"))["t"]]
    firsts = [t for t in firsts if t is not None]
    return floor_bucket(min(firsts)) if firsts else None


def outcomes_settle(*, tenant: Tenant, journey_id: int, now: dt.datetime | None = None, rebuild: bool = False,
                    progress: Callable[[float], None] | None = None) -> int:
    """Settle `journey_id`'s buckets up to its horizon; returns how many buckets were written.

    Each CHUNK is one transaction that locks the journey row (a second settler skips the journey)
    and moves `outcomes_settled_until` with the buckets it writes, so a crash loses nothing and
    settles nothing twice. `rebuild` deletes the journey's buckets first and starts from its first
    enrollment or send. `progress` gets the fraction of the way done after each chunk.
    """
    now = now or clock.now()
    written = 0
    with transaction.atomic():
        journey = (Journey.objects.for_tenant(tenant).select_for_update(skip_locked=True, of=("self",))
                   .filter(pk=journey_id).first())
        if journey is None:
            return 0
        if rebuild:
            OutcomeBucket.objects.for_tenant(tenant).filter(journey=journey).delete()
            Journey.objects.for_tenant(tenant).filter(pk=journey.pk).update(outcomes_settled_until=None,
                                                                            outcomes_open_until=None)
            journey.outcomes_settled_until = None
        start = journey.outcomes_settled_until or _first_activity(tenant, journey)
        horizon = settle_horizon(journey, now)
        if start is None or start >= horizon:
            if start is None or rebuild:  # nothing yet: everything before the horizon is settled (as nothing)
                Journey.objects.for_tenant(tenant).filter(pk=journey.pk).update(
                    outcomes_settled_until=max(horizon, journey.outcomes_settled_until or horizon))
            return 0
    origin = start
    while start < horizon:
        end = min(start + CHUNK, horizon)
        with transaction.atomic():
            journey = (Journey.objects.for_tenant(tenant).select_for_update(skip_locked=True, of=("self",))
                       .filter(pk=journey_id).first())
            settled = journey.outcomes_settled_until if journey else None
            if journey is None or (settled is not None and settled != start):
                return written  # another settler holds it or got there first
            made = _buckets(tenant, journey, start, end)
            OutcomeBucket.objects.for_tenant(tenant).bulk_create(made)
            Journey.objects.for_tenant(tenant).filter(pk=journey.pk).update(outcomes_settled_until=end)
            written += len(made)
        start = end
        if progress:
            progress((start - origin) / (horizon - origin))
    return written


def outcomes_refresh_open(*, tenant: Tenant, journey_id: int, now: dt.datetime | None = None) -> int:
    """Recompute the journey's "open" buckets: its sends since the settled mark, still in their
    window, with what came of them so far. Replaces them wholesale; returns how many."""
    now = now or clock.now()
    with transaction.atomic():
        journey = (Journey.objects.for_tenant(tenant).select_for_update(skip_locked=True, of=("self",))
                   .filter(pk=journey_id).first())
        if journey is None or journey.outcomes_settled_until is None:
            return 0
        until = floor_bucket(now)
        OutcomeBucket.objects.for_tenant(tenant).filter(journey=journey, kind=OutcomeBucket.Kind.OPEN).delete()
        made = []
        if until > journey.outcomes_settled_until:
            made = _step_buckets(tenant, journey, journey.outcomes_settled_until, until, OutcomeBucket.Kind.OPEN)
            OutcomeBucket.objects.for_tenant(tenant).bulk_create(made)
        Journey.objects.for_tenant(tenant).filter(pk=journey.pk).update(outcomes_open_until=until)
        return len(made)


def journeys_with_open_sends() -> Iterable[tuple[int, int]]:
    """(tenant id, journey id) of the journeys whose open buckets beat refreshes: running ones, and
    any whose open buckets reach past the settled mark. System scope."""
    running = Q(status__in=[Journey.Status.ACTIVE, Journey.Status.PAUSED])
    open_left = Q(outcomes_open_until__gt=F("outcomes_settled_until"))
    rows = (Journey.all_tenants.filter(running | open_left, outcomes_settled_until__isnull=False)
            .order_by("tenant_id", "pk").values_list("tenant_id", "pk"))
    yield from rows.iterator()


MEASURE_FIELDS = ("goal_event", "attribution_window")


def outcomes_forget(*, tenant: Tenant, journey: Journey) -> None:
    """The journey's goal or attribution window changed: its buckets measured the old one. Beat
    settles them again from the start (the dashboards join live meanwhile). Call inside the
    transaction that saved the change."""
    OutcomeBucket.objects.for_tenant(tenant).filter(journey=journey).delete()
    Journey.objects.for_tenant(tenant).filter(pk=journey.pk).update(outcomes_settled_until=None,
                                                                    outcomes_open_until=None)
    journey.outcomes_settled_until = journey.outcomes_open_until = None


def journeys_to_settle(now: dt.datetime | None = None) -> Iterable[tuple[int, int]]:
    """(tenant id, journey id) of every journey with something new to settle. System scope."""
    now = now or clock.now()
    rows = Journey.all_tenants.values_list("tenant_id", "pk", "attribution_window", "outcomes_settled_until")
    for tenant_id, pk, window, settled in rows.order_by("tenant_id", "pk").iterator():
        if settled is None or settled < floor_bucket(now - window - GRACE):
            yield tenant_id, pk
