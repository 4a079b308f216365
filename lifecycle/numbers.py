"""Whole numbers read from a request (a path id, a query or form value): ASCII decimal digits only.

`str.isdigit()` is no test for this: it accepts "²" (which `int()` refuses) and "١" (which `int()`
reads as 1), so a check with it either lets a 500 through or takes a value nobody typed.
"""

import datetime as dt
import re

from django.http import Http404

from .errors import ServiceError

BIGINT_MAX = 2**63 - 1  # the largest primary key PostgreSQL can hold
_DIGITS = re.compile(r"[0-9]{1,19}")


class BadNumber(ServiceError):
    """A query or form value that is not a whole number in range: a 400 with `message` for people
    (the API answers it as its error shape; pages show `message`)."""

    def __init__(self, name: str, minimum: int, maximum: int):
        what = f"must be a whole number from {minimum} to {maximum}"
        super().__init__("request.bad_number", f"{name} {what}", {name: [what]})
        self.name = name


def whole_number(raw: object, *, minimum: int = 0, maximum: int = BIGINT_MAX) -> int | None:
    """`raw` as an int when it is 1-19 ASCII digits within [minimum, maximum]; otherwise None."""
    if not isinstance(raw, str) or not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if minimum <= value <= maximum else None


def number_or_400(raw: object, name: str, *, minimum: int = 0, maximum: int = BIGINT_MAX) -> int:
    """A query or form value that must be a whole number: BadNumber (400, with a message) if not."""
    value = whole_number(raw, minimum=minimum, maximum=maximum)
    if value is None:
        raise BadNumber(name, minimum, maximum)
    return value


def id_or_404(raw: object) -> int:
    """A path id: anything but a positive ASCII whole number that fits a bigint names no object."""
    value = whole_number(raw, minimum=1)
    if value is None:
        raise Http404("no such object")
    return value


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def calendar_date(raw: object) -> dt.date | None:
    """`raw` as a date when it is exactly YYYY-MM-DD (OpenAPI's `format: date`); otherwise None.
    (`date.fromisoformat` also reads "20260131" and "2026-W05-6", which the published schema does not allow.)"""
    if not isinstance(raw, str) or not _DATE.fullmatch(raw):
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        return None
