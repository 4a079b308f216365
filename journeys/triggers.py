"""The date triggers: a day relative to a customer fact (birthday, order anniversary, N days since the
last order) becomes a `date.reached` event on the customer's timeline, which starts the journeys whose
trigger names that fact (journeys.enrollment.trigger_config_matches). Entering a segment is
journeys.segments.segments_refresh; a support contact is the storefront's own `support.contacted`.

Beat runs `date_events_append` for every store each hour; the day is the store's (its time zone), and
each (fact, customer, day) is appended once (the event's dedupe key), however often it runs.
"""

import datetime as dt
import zoneinfo

from django.db.models import Q

from lifecycle import clock
from lifecycle.models import Customer, Event, Tenant
from lifecycle.timeline import event_append
from loyalty.models import LoyaltyAccount

from .models import Journey

# An order anniversary is celebrated for this many years.
ANNIVERSARY_YEARS = 10


def _day_range(day: dt.date, zone: zoneinfo.ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    return start, start + dt.timedelta(days=1)


def _years_ago(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year - years, day=28)


def date_facts_due(*, tenant: Tenant, fact: str, days: int | None, today: dt.date) -> list[tuple[int, dict]]:
    """(customer id, the event's data) for each customer whose fact falls on `today` (the store's day)."""
    zone = zoneinfo.ZoneInfo(tenant.time_zone or "UTC")
    base = {"fact": fact, "date": today.isoformat()}
    customers = Customer.objects.for_tenant(tenant).filter(erased_at__isnull=True)
    if fact == "birthday":
        days_wanted = [(today.month, today.day)]
        if today.month == 2 and today.day == 28 and not _is_leap(today.year):
            days_wanted.append((2, 29))  # a 29 February birthday is kept on the 28th
        match = Q()
        for month, day in days_wanted:
            match |= Q(birthday__month=month, birthday__day=day)
        rows = LoyaltyAccount.objects.for_tenant(tenant).filter(match, customer__erased_at__isnull=True)
        return [(customer_id, dict(base)) for customer_id in rows.order_by("customer_id").values_list(
            "customer_id", flat=True)]
    if fact == "order_anniversary":
        found = []
        for years in range(1, ANNIVERSARY_YEARS + 1):
            start, end = _day_range(_years_ago(today, years), zone)
            for customer_id in customers.filter(first_order_at__gte=start, first_order_at__lt=end).values_list(
                    "pk", flat=True):
                found.append((customer_id, {**base, "years": years}))
        return sorted(found, key=lambda row: row[0])
    if fact == "days_since_last_order" and days:
        start, end = _day_range(today - dt.timedelta(days=days), zone)
        return [(pk, {**base, "days": days}) for pk in customers.filter(
            last_order_at__gte=start, last_order_at__lt=end).order_by("pk").values_list("pk", flat=True)]
    return []


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def date_events_append(*, tenant: Tenant, now: dt.datetime | None = None) -> int:
    """Append `date.reached` for today's facts of the store's active date journeys; returns how many were
    new. Idempotent per (fact, days, customer, day)."""
    now = now or clock.now()
    today = now.astimezone(zoneinfo.ZoneInfo(tenant.time_zone or "UTC")).date()
    wanted = {(c.get("fact"), c.get("days")) for c in Journey.objects.for_tenant(tenant).filter(
        trigger=Journey.Trigger.DATE, status=Journey.Status.ACTIVE).values_list("trigger_config", flat=True)
        if isinstance(c, dict) and c.get("fact")}
    appended = 0
    for fact, days in sorted(wanted, key=str):
        due = date_facts_due(tenant=tenant, fact=fact, days=days, today=today)
        keys = {customer_id: f"date:{fact}:{days or ''}:{customer_id}:{today.isoformat()}" for customer_id, _ in due}
        done = set(Event.objects.for_tenant(tenant).filter(dedupe_key__in=list(keys.values())).values_list(
            "dedupe_key", flat=True))
        customers = Customer.objects.for_tenant(tenant).in_bulk([c for c, _ in due if keys[c] not in done])
        for customer_id, data in due:
            if keys[customer_id] in done or customer_id not in customers:
                continue
            event_append(tenant=tenant, type="date.reached", occurred_at=now, customer=customers[customer_id],
                         data=data, dedupe_key=keys[customer_id])
            appended += 1
    return appended
