"""The customer's timeline: appending events (the outbox the event sweep hands to the apps)."""

import datetime as dt
from typing import Any

from . import clock
from .models import (
    Customer,
    Event,
    Order,
    Tenant,
)
from .tables import EVENTS


def event_append(
    *,
    tenant: Tenant,
    type: str,  # noqa: A002 - the event's name in the domain
    occurred_at: dt.datetime,
    customer: Customer | None = None,
    order: Order | None = None,
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    backfill: bool = False,
) -> Event:
    """Append to the timeline (the row `event_row` describes). Call inside the transaction that made the change."""
    row = event_row(tenant=tenant, type=type, occurred_at=occurred_at, data=data, dedupe_key=dedupe_key,
                    backfill=backfill)
    event = Event(tenant=tenant, customer=customer, order=order,
                  **{field: value for field, value in row.items() if not field.endswith("_id")})
    EVENTS.insert([event])
    return event


def event_row(
    *,
    tenant: Tenant,
    type: str,  # noqa: A002 - the event's name in the domain
    occurred_at: dt.datetime,
    customer: Customer | None = None,
    order: Order | None = None,
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    backfill: bool = False,
) -> dict[str, Any]:
    """An event's row, not yet written: callers that append several write them in one INSERT
    (rows.Table.insert_dicts, no model instance each)."""
    return {"tenant_id": tenant.pk, "type": type, "occurred_at": occurred_at,
            "customer_id": customer.pk if customer is not None else None,
            "order_id": order.pk if order is not None else None, "data": data or {}, "dedupe_key": dedupe_key,
            "backfill": backfill, "processed_at": clock.now() if backfill else None}
