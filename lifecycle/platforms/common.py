"""Parsing that Shopify and WooCommerce payloads share. No database; the clock only bounds accepted times."""

import base64
import contextlib
import contextvars
import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import pydantic

from lifecycle.inputs import WEB_URL_MAX_LENGTH, NormalizedEmail, timestamp_window, web_url

from .. import jsonbody
from ..money import to_decimal

logger = logging.getLogger(__name__)


class PayloadError(ValueError):
    """A signed payload we cannot map. The message is stored on the delivery, for people."""


# What mapping one payload left out or changed (a timestamp out of range, a line with a
# negative quantity): kept in the delivery's detail and logged, never dropped silently.
_notes: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("payload_notes", default=None)


@contextlib.contextmanager
def collecting_notes() -> Iterator[list[str]]:
    notes: list[str] = []
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)


def note(message: str) -> None:
    logger.warning("webhook payload: %s", message)
    notes = _notes.get()
    if notes is not None and message not in notes:
        notes.append(message)


def hmac_sha256_base64(secret: bytes, body: bytes) -> str:
    """What both platforms send: base64(HMAC-SHA256(secret, raw body))."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def signature_matches(body: bytes, signature: str, secrets: Iterable[bytes]) -> bool:
    """True if `signature` is the base64 HMAC of the exact `body` bytes under any secret.

    Every secret is tried (no early exit) and each compare is constant-time, so the
    answer's timing says nothing about which secret, or which bytes, were close.
    """
    given = signature.strip().encode()
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(hmac_sha256_base64(secret, body).encode(), given)
    return matched


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; numbers with a fraction become Decimal, never float.

    The same bounded loader as the API's (`lifecycle.jsonbody`): too deep, a number too long,
    NaN or a lone surrogate is a PayloadError, never an exception the view would answer 500 to.
    """
    try:
        payload = jsonbody.loads(body)
    except jsonbody.JSONBodyError as exc:
        raise PayloadError(exc.message[:1].lower() + exc.message[1:]) from exc
    if not isinstance(payload, dict):
        raise PayloadError(f"the body is JSON but not an object (got {type(payload).__name__})")
    return payload


def unwrap(payload: dict[str, Any], resource: str) -> dict[str, Any]:
    """Webhooks send the resource at top level; the REST API wraps it as {"refund": {...}}.
    Accept both, so a payload fetched by hand during reconciliation maps the same way."""
    inner = payload.get(resource)
    if len(payload) == 1 and isinstance(inner, dict):
        return inner
    return payload


def obj(value: Any) -> dict[str, Any]:
    """A nested object, or {} when the platform sent null or left it out."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[dict[str, Any]]:
    """A list of objects, or [] when the platform sent null or left it out."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def text(value: Any, max_length: int) -> str:
    """A string field clipped to our column, "" for null. Clipping a title or a note is
    better than refusing the whole order over it."""
    if value is None:
        return ""
    return str(value).strip()[:max_length]


def external_id(value: Any) -> str | None:
    """Platform ids are 64-bit integers: kept as strings, never through float or JS."""
    if value is None or isinstance(value, bool) or value == "" or value == 0:
        return None
    if isinstance(value, int | str):
        return str(value).strip() or None
    raise PayloadError(f"id {value!r} is not an integer or a string")


def money(value: Any, field: str) -> Decimal:
    """A money amount from a decimal string (or a JSON number, parsed as Decimal)."""
    try:
        return to_decimal(value)
    except ValueError as exc:
        raise PayloadError(f"{field} {value!r} is not a decimal amount") from exc


def when(value: Any, field: str, *, naive_is_utc: bool = False) -> dt.datetime | None:
    """An aware datetime from ISO 8601, None for null/empty.

    WooCommerce's `*_gmt` fields are UTC without a `Z` (`naive_is_utc`); Shopify always
    sends an offset, so a naive Shopify time is refused rather than guessed.

    A time outside the accepted window (`schemas.timestamp_window`, e.g. 0001-01-01 or
    9999-12-31) is dropped with a note, as if the platform had left it out: the order is
    still recorded (the field falls back as a missing one does) and the raw body is kept on
    the delivery. Refusing the delivery instead would lose the order: the platform resends the
    same original payload (Shopify 8 times over 4 hours, WooCommerce disables the webhook after
    5 failures), and it would fail the same way every time.
    """
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{field} {value!r} is not an ISO 8601 date-time")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise PayloadError(f"{field} {value!r} is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise PayloadError(f"{field} {value!r} has no UTC offset")
        parsed = parsed.replace(tzinfo=dt.UTC)
    earliest, latest = timestamp_window()
    try:
        inside = earliest <= parsed <= latest
    except OverflowError:  # comparing converts to UTC: 0001-01-01T00:00:00+01:00 has no UTC time
        inside = False
    if not inside:
        note(f"{field} {value!r} ignored: outside {earliest:%Y-%m-%d} .. {latest:%Y-%m-%d}")
        return None
    return parsed


_email = pydantic.TypeAdapter(NormalizedEmail)


def email_or_none(*candidates: Any) -> str | None:
    """The first candidate that is a valid address, normalized.

    An invalid address is dropped, not fatal: losing the order over a typo in an email
    would lose more than it protects (the customer can still be matched by id).
    """
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            try:
                return _email.validate_python(candidate.strip())
            except pydantic.ValidationError:
                continue
    return None


def quantity(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise PayloadError(f"{field} {value!r} is not a whole number")
    try:
        number = Decimal(str(value))
    except ArithmeticError as exc:
        raise PayloadError(f"{field} {value!r} is not a whole number") from exc
    if number != number.to_integral_value():
        raise PayloadError(f"{field} {value!r} is not a whole number")
    return int(number)


def url_or_empty(value: Any) -> str:
    """A product page or image URL the platform sent, or "" when it is not one we would put in an
    email (not http(s), too long): a bad image never costs the store its order."""
    try:
        url = web_url(value) if value is not None else ""
    except ValueError:
        return ""
    return url if len(url) <= WEB_URL_MAX_LENGTH else ""
