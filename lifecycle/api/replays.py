"""Answers to repeated order posts, kept briefly in Redis so a repeat costs one small read.

Storefronts and their retry queues post the same order again, byte for byte, far more often
than they change it. For such a repeat the full path parses and validates the body, reads
the order, its lines and customer, decides that nothing changes and renders the answer.
Here the answer given last time is kept under (tenant, SHA-256 of the body) with the order's
state token: its updated_at, refunded_total, status and customer, and that customer's
updated_at. A repeat whose token still matches the database gets the kept bytes with 200 (one
indexed SELECT, no parsing); any other goes the full way.

Why that token suffices: applying a payload is deterministic given the order and the customer
it names, and everything that changes either (order_ingest, order_mark, the refund's
refunded_total and status, customer updates, unsubscribe, erasure) moves one of those columns.
Only payloads that name their customer by external id are kept: one found by email alone may
resolve to another customer later without either row changing.

No Idempotency-Key requests (api/idempotency.py keeps those for 24 h); PostgreSQL and Redis
only (the embedded profile has neither).
"""

import hashlib
import json
from decimal import Decimal

from django.db import connection

from ..models import Customer, Order
from ..rows import execute
from ..throttling import redis_client

# Long enough for a storefront's retries and resends, short enough that Redis holds only the
# last minutes of orders (~2 KB each).
KEEP_SECONDS = 300
_TOKEN_SQL = (
    f"SELECT o.updated_at, o.refunded_total, o.status, o.customer_id, c.updated_at "  # noqa: S608
    f"FROM {Order._meta.db_table} o LEFT JOIN {Customer._meta.db_table} c "
    # The customer's tenant named too: on Citus that keeps the statement on the store's shard group.
    "ON c.tenant_id = %s AND c.id = o.customer_id "
    "WHERE o.tenant_id = %s AND o.external_id = %s"
)


def answer_key(tenant_id: int, body: bytes) -> str:
    """Where the answer to this body is kept (the rate limit may read it in its round trip)."""
    return f"t:{tenant_id}:order-answer:{hashlib.sha256(body).hexdigest()}"


def _token(updated_at, refunded_total, status, customer_id, customer_updated_at) -> str:
    return "|".join([updated_at.isoformat(), str(Decimal(refunded_total).normalize()), status, str(customer_id),
                     customer_updated_at.isoformat() if customer_updated_at else ""])


def recall(tenant_id: int, body: bytes, read: dict[str, bytes | None] | None = None) -> bytes | None:
    """The answer kept for this exact body, if the order is still as it was then. `read`: Redis
    values already read for this request (the rate limit's), which may hold the kept answer."""
    client = redis_client()
    if client is None or connection.vendor != "postgresql":
        return None
    key = answer_key(tenant_id, body)
    kept = read[key] if read is not None and key in read else client.get(key)
    if kept is None:
        return None
    head, _, answer = kept.partition(b"\n")
    external_id, token = json.loads(head)
    with connection.cursor() as cursor:
        execute(cursor, _TOKEN_SQL, [tenant_id, tenant_id, external_id])
        row = cursor.fetchone()
    if row is None or _token(*row) != token:
        return None
    return answer


def keep(tenant_id: int, body: bytes, order: Order, answer: bytes) -> None:
    """Keep the answer just given for `body`; `order` as it stands now (its customer cached)."""
    client = redis_client()
    if client is None or connection.vendor != "postgresql":
        return
    customer = order.customer
    token = _token(order.updated_at, order.refunded_total, order.status, order.customer_id,
                   customer.updated_at if customer is not None else None)
    head = json.dumps([order.external_id, token]).encode()
    client.set(answer_key(tenant_id, body), head + b"\n" + answer, ex=KEEP_SECONDS)
