"""The one place the application reads the time, so tests can move it.

Everything that decides *when* (due dates, quiet hours, expiry, idempotency windows)
calls `clock.now()`. Tests use `clock.frozen(...)` / `clock.advance(...)`.
"""

import contextlib
import datetime as dt
from collections.abc import Iterator

from django.utils import timezone

_offset = dt.timedelta(0)
_frozen_at: dt.datetime | None = None


def now() -> dt.datetime:
    if _frozen_at is not None:
        return _frozen_at
    return timezone.now() + _offset


def advance(delta: dt.timedelta) -> None:
    global _offset, _frozen_at
    if _frozen_at is not None:
        _frozen_at = _frozen_at + delta
    else:
        _offset += delta


@contextlib.contextmanager
def frozen(at: dt.datetime) -> Iterator[None]:
    global _frozen_at
    if timezone.is_naive(at):
        raise ValueError("clock.frozen() needs an aware datetime")
    previous = _frozen_at
    _frozen_at = at
    try:
        yield
    finally:
        _frozen_at = previous


def reset() -> None:
    global _offset, _frozen_at
    _offset = dt.timedelta(0)
    _frozen_at = None
