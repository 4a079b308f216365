"""Instants at the ends of the calendar (datetime.max / datetime.min, which PostgreSQL holds) that a
store's time zone cannot show: 9999-12-31T23:59Z is already year 10000 in Berlin, and Python raises
OverflowError converting it. Pages show such an instant in UTC instead of failing, and date filters
clamp to the instants that exist.
"""

import datetime as dt

import django.template.base
from django.utils import timezone

EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


def day_start(day: dt.date, zone: dt.tzinfo) -> dt.datetime:
    """Midnight of `day` in `zone`, clamped to the instants Python and PostgreSQL both hold: the
    calendar's first and last days exist in a store's zone, but not always their midnights in UTC.
    The calendar's first day starts at the first instant (west of UTC, the hours before its midnight
    fall on a day that does not exist)."""
    if day == dt.date.min:
        return EARLIEST
    try:
        return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC)
    except OverflowError:
        return EARLIEST if day.year == dt.MINYEAR else LATEST


def day_end(day: dt.date, zone: dt.tzinfo) -> dt.datetime | None:
    """Midnight after `day` in `zone` (the end of `day`, exclusive), or None when no instant comes
    after it (the calendar's last day): then nothing bounds the range from above."""
    if day == dt.date.max:
        return None
    end = day_start(day + dt.timedelta(days=1), zone)
    return None if end == LATEST else end


def _template_localtime(value, use_tz=None):
    try:
        return _django_template_localtime(value, use_tz)
    except OverflowError:
        return value  # shown in UTC: in the store's zone this instant is off the calendar


_django_template_localtime = timezone.template_localtime


def install() -> None:
    """Templates convert each datetime to the active zone (django.template.base.template_localtime,
    for {{ value }} and the date filters) before they show it; convert the extremes to nothing."""
    django.template.base.template_localtime = _template_localtime
