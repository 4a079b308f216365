"""What the API answers with. Pydantic models read straight off the ORM rows."""

import datetime as dt
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ..money import money_str


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


MoneyOut = Annotated[str, Field(examples=["59.90"], description="Decimal amount as a string, in `currency`.")]


class OrderLineOut(Out):
    external_id: str
    product_external_id: str
    sku: str
    title: str
    quantity: int
    unit_price: MoneyOut


class RefundOut(Out):
    external_id: str
    amount: MoneyOut
    currency: str
    reason: str
    refunded_at: dt.datetime


class OrderOut(Out):
    external_id: str
    number: str
    status: str = Field(description="pending, paid, fulfilled, delivered, refunded or cancelled")
    customer_external_id: str | None = None
    customer_email: str | None = None
    currency: str
    subtotal: MoneyOut
    discount_total: MoneyOut
    total: MoneyOut
    refunded_total: MoneyOut
    discount_codes: list[str]
    referral_code: str
    placed_at: dt.datetime | None
    paid_at: dt.datetime | None
    fulfilled_at: dt.datetime | None
    delivered_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    lines: list[OrderLineOut]
    refunds: list[RefundOut]

    @classmethod
    def of(cls, order, lines, refunds) -> "OrderOut":
        """From an order as read or as just written: amounts are shown in the currency's minor
        units and times in UTC either way, so both give the same bytes."""
        customer, currency = order.customer, order.currency
        scalars = {name: getattr(order, name) for name in cls.model_fields
                   if name not in ("lines", "refunds", "customer_external_id", "customer_email")}
        for name in ("subtotal", "discount_total", "total", "refunded_total"):
            scalars[name] = money_str(Decimal(scalars[name]), currency)
        for name in ("placed_at", "paid_at", "fulfilled_at", "delivered_at", "cancelled_at"):
            if scalars[name] is not None:
                scalars[name] = scalars[name].astimezone(dt.UTC)
        lines = [{**{f: getattr(line, f) for f in OrderLineOut.model_fields},
                  "unit_price": money_str(Decimal(line.unit_price), currency)} for line in lines]
        refunds = [{**{f: getattr(r, f) for f in RefundOut.model_fields}, "amount": money_str(r.amount, r.currency)}
                   for r in refunds]
        return cls.model_validate({
            **scalars, "lines": lines, "refunds": refunds,
            "customer_external_id": customer.external_id if customer else None,
            "customer_email": (customer.email or None) if customer else None,
        })


class CustomerOut(Out):
    external_id: str | None
    email: str
    first_name: str
    last_name: str
    locale: str
    time_zone: str
    marketing_consent: bool | None
    consent_updated_at: dt.datetime | None
    unsubscribed_at: dt.datetime | None
    suppressed_at: dt.datetime | None
    suppression_reason: str
    first_order_at: dt.datetime | None
    last_order_at: dt.datetime | None
    order_count: int
    total_spent: MoneyOut = Field(description="Paid, uncancelled orders in the store's currency, net of refunds.")
    currency: str
    created_at: dt.datetime

    @classmethod
    def of(cls, customer, currency: str) -> "CustomerOut":
        data = {name: getattr(customer, name) for name in cls.model_fields if name != "currency"}
        data["total_spent"] = money_str(customer.total_spent, currency)
        return cls.model_validate({**data, "currency": currency})


class CustomerListOut(BaseModel):
    results: list[CustomerOut]


class EventOut(Out):
    id: int
    type: str
    occurred_at: dt.datetime
    customer_external_id: str | None
    created: bool = Field(description="False when this idempotency_key was already recorded.")


class BulkItemOut(BaseModel):
    index: int
    external_id: str | None = None
    result: str = Field(description="created, updated, unchanged or error")
    error: dict | None = None


class BulkOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    errors: int
    results: list[BulkItemOut]


class ErrorOut(BaseModel):
    """Every error the API answers: `code` is stable, `message` is for people, `fields` names each problem."""

    code: str = Field(examples=["validation_failed"])
    message: str
    fields: dict[str, list[str]] = Field(description="Problems by field (dotted path); may be empty.")


class PingOut(BaseModel):
    ok: bool
    tenant: str
