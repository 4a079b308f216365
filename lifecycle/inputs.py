"""The shapes the storefront sends us, validated once, used by the API, webhooks and imports.

Pydantic gives field-level messages with exact locations (`lines.2.quantity`) and the
same models publish the OpenAPI schema through drf-spectacular's pydantic extension.
"""

import contextvars
import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StrictInt,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from . import clock
from .models import is_time_zone
from .money import AMOUNT_HINT, MAX_AMOUNT, MAX_AMOUNT_TEXT, MONEY_DECIMAL_PLACES, is_currency, to_decimal


def _money(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str | int):
        amount = to_decimal(value)
    else:
        raise ValueError(AMOUNT_HINT)
    if amount < 0:
        raise ValueError("must not be negative")
    if amount >= MAX_AMOUNT:
        raise ValueError(f"is too large (at most {MAX_AMOUNT_TEXT})")
    if -amount.as_tuple().exponent > MONEY_DECIMAL_PLACES:
        raise ValueError(f"has more than {MONEY_DECIMAL_PLACES} decimal places")
    return amount


def _json_integer(value: Any) -> Any:
    """JSON Schema's `integer` is a number with no fraction: 2 and 2.0 alike (the body parser reads
    numbers as Decimal). `true` and "2" stay refused: strict int takes neither."""
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# A whole number as JSON Schema means it: 3 or 3.0, never true or "3".
JsonInt = Annotated[StrictInt, BeforeValidator(_json_integer)]


def _currency(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 4217 currency code such as \"EUR\"")
    code = value.strip().upper()
    if not is_currency(code):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code such as \"EUR\"")
    return code


def _normalize_email(value: str) -> str:
    return value.strip().lower()


# Nearly every address a store sends is plain ASCII: dot-separated runs of letters, digits, _ + -
# before the @, letter-digit-hyphen labels and an alphabetic top-level domain after it. Such an
# address is valid exactly when email-validator's other rules hold too (lengths, no "--" in a label,
# not a special-use domain such as .local or .test), and then EmailStr gives it back unchanged
# but for case. Checked here, it skips email-validator's character-by-character Unicode checks,
# a fifth of validating an order (tests/lifecycle/test_inputs_email.py compares the two).
# Anything else takes the full validation.
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)


def plain_email(value: Any) -> bool:
    """An address EmailStr accepts as it is (but for case), recognized without email-validator."""
    if type(value) is not str or len(value) > 254 or not _PLAIN_EMAIL.fullmatch(value):
        return False
    local, _, domain = value.partition("@")
    domain = domain.lower()
    return (len(local) <= 64 and len(domain) <= 253 and "--" not in domain
            and not any(domain == name or domain.endswith("." + name) for name in _SPECIAL_USE))


def _email(value: Any, validate) -> Any:
    return value if plain_email(value) else validate(value)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


Money = Annotated[Decimal, BeforeValidator(_money), Field(json_schema_extra={"type": "string", "example": "19.90"})]
Currency = Annotated[str, BeforeValidator(_currency), Field(examples=["EUR"], min_length=3, max_length=3)]
ExternalId = Annotated[str, BeforeValidator(_strip), Field(min_length=1, max_length=255)]
NormalizedEmail = Annotated[EmailStr, WrapValidator(_email), AfterValidator(_normalize_email)]


# The accepted window for every date-time we are sent (API, webhooks, imports): from the Unix
# epoch to a little after now. Nothing a store records happened before 1970 or days ahead; and
# 0001-01-01 / 9999-12-31 overflow as soon as they are shown in a store's time zone. The leeway
# covers a sender's clock running fast, or a local time sent as UTC (at most ±14 hours).
EARLIEST_TIMESTAMP = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
FUTURE_LEEWAY = dt.timedelta(days=2)
OUT_OF_RANGE = "datetime_out_of_range"


def timestamp_window() -> tuple[dt.datetime, dt.datetime]:
    return EARLIEST_TIMESTAMP, clock.now() + FUTURE_LEEWAY


def _iso_datetime(value: Any) -> Any:
    """Only an ISO 8601 string with a UTC offset (or a datetime, from our own mapping code).

    Pydantic would also take a Unix number (1700000000, or "1700000000"), which says nothing
    about its zone: refused like any date-time without an offset.
    """
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "must be an ISO 8601 date-time with a UTC offset")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise PydanticCustomError("datetime_parsing", "must be an ISO 8601 date-time with a UTC offset") from None
    if parsed.tzinfo is None:
        raise PydanticCustomError("timezone_aware", "must include a UTC offset")
    return parsed


def _utc(value: dt.datetime) -> dt.datetime:
    # Stored in UTC anyway, and PostgreSQL takes UTC offsets only up to ±15:59 where ISO 8601 (and
    # Python) allow ±23:59: "…T05:33:04-22:56" must be a time, not a database error.
    earliest, latest = timestamp_window()
    try:
        value = value.astimezone(dt.UTC)
    except OverflowError:
        value = None
    if value is None or not earliest <= value <= latest:
        raise PydanticCustomError(
            OUT_OF_RANGE, "must be between {earliest} and {latest} (now + {days} days)",
            {"earliest": earliest.strftime("%Y-%m-%dT%H:%M:%SZ"), "latest": latest.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "days": FUTURE_LEEWAY.days},
        )
    return value


UtcDatetime = Annotated[
    AwareDatetime, BeforeValidator(_iso_datetime), AfterValidator(_utc),
    Field(json_schema_extra={"description": "ISO 8601 with a UTC offset, from 1970-01-01T00:00:00Z to now + 2 days."}),
]


def _has_nul(value: Any) -> bool:
    """Whether parsed JSON holds a NUL character anywhere (a key or a string): what every input model
    asks of its data, nested ones again, so without the paths `_nul_at` builds to say where."""
    if isinstance(value, dict):
        for key, item in value.items():
            if type(item) is str:  # the usual leaf, checked without a call
                if "\x00" in item:
                    return True
            elif _has_nul(item):
                return True
            if isinstance(key, str) and "\x00" in key:
                return True
        return False
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return isinstance(value, str) and "\x00" in value


def _nul_at(value: Any, path: tuple = ()) -> tuple | None:
    """Where a NUL character is in parsed JSON (a key or a string), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = (*path, key) if isinstance(key, str) and "\x00" in key else _nul_at(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _nul_at(item, (*path, index))
            if found is not None:
                return found
    return None


# Set while a model's data, already searched for NUL characters whole, is validated: the models
# nested in it (an order's customer and lines) need not search their part again.
_NUL_CHECKED: contextvars.ContextVar[bool] = contextvars.ContextVar("nul_checked", default=False)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="wrap")
    @classmethod
    def _no_nul_characters(cls, data: Any, handler) -> Any:
        # PostgreSQL cannot store U+0000 in text or JSON: refused here, with where it is, before any write.
        if _NUL_CHECKED.get():
            return handler(data)
        where = _nul_at(data) if _has_nul(data) else None
        if where is not None:
            raise ValueError(f"{'.'.join(map(str, where)) or 'the text'} must not contain a NUL (\\u0000) character")
        token = _NUL_CHECKED.set(True)
        try:
            return handler(data)
        finally:
            _NUL_CHECKED.reset(token)


class CustomerIn(Strict):
    external_id: ExternalId | None = None
    email: NormalizedEmail | None = None
    first_name: str = Field(default="", max_length=150)
    last_name: str = Field(default="", max_length=150)
    locale: str = Field(default="", max_length=35, examples=["en-US"])
    time_zone: str = Field(default="", max_length=64, examples=["Europe/Berlin"])
    marketing_consent: StrictBool | None = Field(
        default=None, description="True only if the customer opted in to marketing email. Omit when unknown."
    )
    consent_updated_at: UtcDatetime | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value and not is_time_zone(value):
            raise ValueError(f"{value!r} is not an IANA time zone such as 'Europe/Berlin'")
        return value

    @model_validator(mode="after")
    def _identify(self) -> "CustomerIn":
        if not self.external_id and not self.email:
            raise ValueError("a customer needs an external_id or an email")
        return self


WEB_URL_MAX_LENGTH = 1000  # Product.url / image_url
WEB_URL_HINT = "must be an absolute http(s) URL, such as https://shop.example.com/products/house-beans"


def web_url(value: Any) -> str:
    """"" or an absolute http(s) URL (a product's page or image: emails link to it and show it)."""
    if not isinstance(value, str):
        raise ValueError(WEB_URL_HINT)
    value = value.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or any(
            c.isspace() or ord(c) < 32 or c in '<>"' for c in value):
        raise ValueError(WEB_URL_HINT)
    return value


# The published pattern is a little stricter than web_url (no user info, no IPv6 literal, no
# backslash): whatever matches it is accepted.
WEB_URL_PATTERN = r'^$|^[Hh][Tt][Tt][Pp][Ss]?://[^\u0000-\u0020<>"/?#@\[\]\\:][^\u0000-\u0020<>"@\[\]\\]*$'
WebUrl = Annotated[str, BeforeValidator(web_url), Field(max_length=WEB_URL_MAX_LENGTH),
                   WithJsonSchema({"type": "string", "maxLength": WEB_URL_MAX_LENGTH, "pattern": WEB_URL_PATTERN})]


class OrderLineIn(Strict):
    external_id: str = Field(default="", max_length=255)
    product_external_id: str = Field(default="", max_length=255)
    sku: str = Field(default="", max_length=255)
    title: str = Field(default="", max_length=500)
    quantity: JsonInt = Field(ge=1, le=1_000_000)
    unit_price: Money
    product_url: WebUrl = Field(default="", description="The product's page on your store. With "
                                "product_external_id, kept on the product: the review request links to it.")
    product_image_url: WebUrl = Field(default="", description="The product's image. With product_external_id, "
                                      "kept on the product: the review request shows it.")


class ProductIn(Strict):
    """A product as a platform describes it (Shopify products/*, WooCommerce product.*)."""

    external_id: ExternalId
    title: str = Field(default="", max_length=500)
    sku: str = Field(default="", max_length=255)
    url: WebUrl = ""
    image_url: WebUrl = ""
    collections: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(
        default=None, max_length=100, description="The collections (categories) it is in, by name or handle. "
                                                  "Left out: the stored ones stay.")


OrderStatusIn = Literal["pending", "paid", "fulfilled", "delivered", "cancelled"]


class OrderIn(Strict):
    external_id: ExternalId
    number: str = Field(default="", max_length=64)
    customer: CustomerIn
    currency: Currency
    status: OrderStatusIn = Field(
        default="paid",
        description="Where the order is now. Status only moves forward: an older status is ignored.",
    )
    placed_at: UtcDatetime | None = Field(default=None, description="ISO 8601 with a UTC offset.")
    paid_at: UtcDatetime | None = None
    fulfilled_at: UtcDatetime | None = None
    delivered_at: UtcDatetime | None = None
    cancelled_at: UtcDatetime | None = None
    cancel_reason: str = Field(default="", max_length=255)
    subtotal: Money | None = None
    discount_total: Money = Decimal("0")
    total: Money
    discount_codes: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    landing_site: str = Field(default="", max_length=2000)
    referring_site: str = Field(default="", max_length=2000)
    referral_code: str = Field(default="", max_length=64)
    lines: list[OrderLineIn] = Field(default_factory=list, max_length=500)
    updated_at: UtcDatetime | None = Field(
        default=None, description="Your system's last change; an update older than the stored one is ignored."
    )

    @field_validator("lines")
    @classmethod
    def _unique_line_ids(cls, lines: list[OrderLineIn]) -> list[OrderLineIn]:
        seen: dict[str, int] = {}
        for index, line in enumerate(lines):
            if line.external_id and line.external_id in seen:
                raise ValueError(
                    f"has two lines with external_id {line.external_id!r} (lines.{seen[line.external_id]} and "
                    f"lines.{index}); each line's external_id must be unique within the order")
            seen.setdefault(line.external_id, index)
        return lines

    @model_validator(mode="after")
    def _consistent(self) -> "OrderIn":
        if self.subtotal is None:
            self.subtotal = sum((line.unit_price * line.quantity for line in self.lines), Decimal("0"))
        return self


class BulkOrdersIn(BaseModel):
    orders: list[Any] = Field(
        min_length=1,
        max_length=1000,
        description="Up to 1,000 orders, each shaped like POST /api/v1/orders. Each one is validated on its own.",
    )
    live: StrictBool = Field(
        default=False,
        description="false (the default): history, backfilled onto timelines, starting no journeys. true: new "
        "orders arriving in bulk (a flash sale relayed from a queue, a storefront catching up after an outage): "
        "their events start journeys exactly as single POSTs do.",
    )


class FulfillmentIn(Strict):
    fulfilled_at: UtcDatetime | None = Field(default=None, description="Defaults to now.")


class DeliveryIn(Strict):
    delivered_at: UtcDatetime | None = Field(default=None, description="Defaults to now.")


class CancellationIn(Strict):
    cancelled_at: UtcDatetime | None = Field(default=None, description="Defaults to now.")
    reason: str = Field(default="", max_length=255)


class RefundIn(Strict):
    external_id: ExternalId = Field(description="Your refund's id: posting it again changes nothing.")
    amount: Money
    reason: str = Field(default="", max_length=500)
    refunded_at: UtcDatetime | None = Field(default=None, description="Defaults to now.")

    @model_validator(mode="after")
    def _positive(self) -> "RefundIn":
        if self.amount <= 0:
            raise ValueError("amount must be greater than zero")
        return self


EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$"
RESERVED_EVENT_PREFIXES = ("order.", "customer.", "email.", "feedback.", "loyalty.", "referral.", "journey.")


class EventIn(Strict):
    type: str = Field(
        max_length=100,
        pattern=EVENT_TYPE_PATTERN,
        examples=["support.contacted"],
        description="Dotted lower-case name such as support.contacted or feature.used.",
    )
    customer: CustomerIn
    occurred_at: UtcDatetime | None = Field(default=None, description="Defaults to now.")
    order_external_id: str | None = Field(default=None, max_length=255)
    idempotency_key: str | None = Field(
        default=None, max_length=200, description="Send the same key again and the event is recorded only once."
    )
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_reserved(self) -> "EventIn":
        if self.type.startswith(RESERVED_EVENT_PREFIXES):
            raise ValueError(
                f"event types starting with {', '.join(RESERVED_EVENT_PREFIXES)} are reserved; "
                "use your own prefix such as support.contacted"
            )
        return self


def ensure_aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("datetime without a UTC offset")
    return value
