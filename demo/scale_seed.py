"""A store of a million customers in minutes: set-based SQL generators for `manage.py seed_scale`.

Every table is ONE `INSERT … SELECT` over `generate_series` (or over rows already written), run
inside PostgreSQL: no row crosses the wire. Measured on the 2-core bench box (load average 6),
200,000 customers into an unindexed table: INSERT … SELECT 1.7 s, COPY from a Python generator
5.1 s (Python formats each row and the server parses it again), so COPY only wins when the rows
come from elsewhere.

Randomness is a hash of (row number, column salt, seed) (`hashint8extended`), so the same seed
and the same `now` give the same store, row for row, and any column can be recomputed from the
row number alone. Everything is consistent by construction:

- orders are placed over the last two years in id order (as a live table grows); each status
  follows from timestamps set in their natural order (placed ≤ paid ≤ fulfilled ≤ delivered,
  cancelled orders never paid, refunded ones delivered first, pending ones placed minutes ago);
  their lines add up to the subtotal, and a refund row exists for every refunded order;
- customers are written after their orders, their aggregates (order_count, first/last_order_at,
  total_spent) computed from those orders by the rule of lifecycle.aggregates.refresh_aggregates;
- enrollments follow paid orders (one in ten held out, no email); each treated enrollment has a
  delivery per step, due at the step's offset from enrollment: due more than BACKLOG ago → final
  (mostly sent, with delivered/opened/clicked after sent_at), due within BACKLOG → pending (the
  claim's work), due later → pending in the future; an enrollment is completed once its last
  email is final, exited ones skip what came after the exit;
- loyalty accounts' balances equal their ledger entries; survey responses answer requests.

A store is seeded once: a second run refuses (the store already has customers).
"""

# ruff: noqa: S608 - SQL here is built from integer sizes and salts this module computes, values are parameters

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Callable

from django.db import connection, transaction

from feedback.models import Survey
from journeys.models import EmailTemplate, Journey, Step
from journeys.schedule import due_queue_fill
from lifecycle.models import Customer, Tenant
from lifecycle.tenancy import system_scope
from lifecycle.tenants import tenant_create
from loyalty.models import Program

HISTORY_DAYS = 730
# Deliveries due within this long before now are still pending: the dispatcher's backlog, the
# claim's work (~570 an hour at 10M deliveries over two years, so ~7,000 rows at full size).
BACKLOG = dt.timedelta(hours=12)
# Each journey: three emails, 0, 3 and 10 days after the enrollment.
STEP_OFFSETS_DAYS = (0, 3, 10)
STEPS = len(STEP_OFFSETS_DAYS)
HOLDOUT_EVERY = 10  # enrollment e with e mod 10 = 0 is held out: 10%
PRODUCTS = 200
# Below this many customers the secondary indexes stay during the load (a test's tiny store);
# above it they are dropped and rebuilt, a sorted build being several times faster than
# maintaining each index row by row.
REBUILD_INDEXES_FROM = 50_000
BULK_TABLES = ["lifecycle_customer", "lifecycle_order", "lifecycle_orderline", "lifecycle_event",
               "lifecycle_refund", "journeys_enrollment", "journeys_delivery", "loyalty_loyaltyaccount",
               "loyalty_ledgerentry", "feedback_surveyrequest", "feedback_surveyresponse", "journeys_duedelivery"]

JOURNEYS = [
    ("Thank you", Journey.Trigger.ORDER_PAID, "Thanks for your order"),
    ("Second order nudge", Journey.Trigger.FIRST_ORDER, "Something for next time"),
    ("Review request", Journey.Trigger.ORDER_DELIVERED, "How was it?"),
    ("Replenishment", Journey.Trigger.REPEAT_ORDER, "Running low?"),
]


class SeedError(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Sizes:
    customers: int
    orders: int
    deliveries: int

    def scaled(self, share: float) -> "Sizes":
        return Sizes(*(max(1, round(n * share)) for n in (self.customers, self.orders, self.deliveries)))


@dataclasses.dataclass
class Result:
    tenant_id: int
    neighbour_id: int | None
    rows: dict[str, int]
    seconds: dict[str, float]


def _u(expr: str, salt: int, seed: int) -> str:
    """SQL for a uniform float in [0, 1) drawn from (expr, salt, seed): the same inputs, the same value."""
    return f"((hashint8extended(({expr})::bigint, {seed * 1000 + salt}) & 2147483647)::float8 / 2147483648.0)"


def _next_id(cursor, table: str) -> int:
    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
    return cursor.fetchone()[0]


def _sync_sequence(cursor, table: str) -> None:
    cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                   f"greatest((SELECT coalesce(max(id), 0) FROM {table}), 1))")


def _commerce_statements(seed: int) -> dict[str, str]:
    """The catalogue, the orders, their lines and refunds."""
    def u(expr: str, salt: int) -> str:
        return _u(expr, salt, seed)

    return {
        "products": f"""
INSERT INTO lifecycle_product (id, tenant_id, external_id, sku, title, url, image_url, replenishment_days,
    collections, created_at, updated_at)
SELECT %(pb)s + p, %(t)s, 'p-' || p, 'SKU-' || p,
    (ARRAY['Espresso beans', 'Filter coffee', 'Green tea', 'Grinder', 'Mug', 'Descaler'])[1 + mod(p, 6)] || ' ' || p,
    '', '', CASE WHEN mod(p, 6) < 3 THEN 30 END, '[]'::jsonb,
    %(now)s::timestamptz - interval '{HISTORY_DAYS + 30} days',
    %(now)s::timestamptz - interval '{HISTORY_DAYS + 30} days'
FROM generate_series(1, {PRODUCTS}) p""",
        # Order j: placed at (m - j + u)/m of the history before now, so ids follow time; its customer
        # drawn with a skew (customer 1 has about m/n^(2/3) orders, the last ones a few or none).
        "orders": f"""
INSERT INTO lifecycle_order (id, tenant_id, customer_id, external_id, number, status, placed_at, paid_at,
    fulfilled_at, delivered_at, cancelled_at, cancel_reason, currency, subtotal, discount_total, total,
    refunded_total, discount_codes, landing_site, referring_site, referral_code, source, created_at, updated_at)
SELECT %(ob)s + j, %(t)s, customer_id, 'o-' || j, '#' || (100000 + j),
    CASE WHEN cancelled IS NOT NULL THEN 'cancelled' WHEN refunded THEN 'refunded'
         WHEN age >= 259200 AND paid THEN 'delivered' WHEN age >= 86400 AND paid THEN 'fulfilled'
         WHEN paid THEN 'paid' ELSE 'pending' END,
    placed, CASE WHEN paid THEN placed + interval '3 minutes' END,
    CASE WHEN paid AND age >= 86400 THEN placed + interval '1 day' END,
    CASE WHEN paid AND age >= 259200 THEN placed + interval '3 days' END,
    cancelled, CASE WHEN cancelled IS NOT NULL THEN 'customer' ELSE '' END,
    %(cur)s, total + discount, discount, total, CASE WHEN refunded THEN total ELSE 0 END,
    CASE WHEN discount > 0 THEN '["WELCOME5"]' ELSE '[]' END::jsonb, '', '', '', 'api', placed,
    CASE WHEN refunded THEN placed + interval '8 days' WHEN cancelled IS NOT NULL THEN cancelled
         WHEN paid AND age >= 259200 THEN placed + interval '3 days'
         WHEN paid AND age >= 86400 THEN placed + interval '1 day' ELSE placed END
FROM (
    SELECT j, customer_id, placed, age, total, discount,
        CASE WHEN r < 0.04 THEN placed + least(7200, age / 2) * interval '1 second' END AS cancelled,
        NOT (r < 0.04 OR age < 180 OR (age < 7200 AND r > 0.5)) AS paid,
        r >= 0.04 AND r < 0.07 AND age >= 864000 AS refunded
    FROM (
        SELECT j, %(cb)s + least(%(n)s, 1 + floor(%(n)s * power({u('j', 1)}, 1.5))::bigint) AS customer_id,
            %(now)s::timestamptz - ({HISTORY_DAYS * 86400}::float8 * (%(m)s - j + {u('j', 2)}) / %(m)s)
                * interval '1 second' AS placed,
            {HISTORY_DAYS * 86400}::float8 * (%(m)s - j + {u('j', 2)}) / %(m)s AS age,
            {u('j', 3)} AS r,
            round((15 + 185 * {u('j', 4)})::numeric, 2) AS total,
            CASE WHEN {u('j', 5)} < 0.1 THEN 5 ELSE 0 END AS discount
        FROM generate_series(1, %(m)s) j
    ) a
) b""",
        # One or two lines, adding up to the subtotal.
        "order_lines": f"""
INSERT INTO lifecycle_orderline (tenant_id, order_id, product_id, position, external_id, product_external_id, sku,
    title, quantity, unit_price)
SELECT o.tenant_id, o.id, %(pb)s + p, pos, 'l-' || o.id || '-' || pos, 'p-' || p, 'SKU-' || p, 'Item ' || p, 1,
    CASE WHEN lines = 1 THEN o.subtotal WHEN pos = 0 THEN round(o.subtotal / 2, 2)
         ELSE o.subtotal - round(o.subtotal / 2, 2) END
FROM (SELECT o.*, CASE WHEN {u('o.id', 6)} < 0.5 THEN 2 ELSE 1 END AS lines FROM lifecycle_order o
      WHERE o.tenant_id = %(t)s) o
CROSS JOIN LATERAL generate_series(0, o.lines - 1) pos
CROSS JOIN LATERAL (SELECT 1 + floor({PRODUCTS} * {u('o.id * 4 + pos', 7)})::int AS p) pick""",
        "refunds": """
INSERT INTO lifecycle_refund (tenant_id, order_id, external_id, amount, currency, reason, refunded_at, created_at)
SELECT tenant_id, id, 'r-' || id, refunded_total, currency, 'damaged in transit', placed_at + interval '8 days',
    placed_at + interval '8 days'
FROM lifecycle_order WHERE tenant_id = %(t)s AND refunded_total > 0""",
    }


def _customer_statements(seed: int) -> dict[str, str]:
    """Customers (with their aggregates) and their timeline events."""
    def u(expr: str, salt: int) -> str:
        return _u(expr, salt, seed)

    return {
        # Customers after their orders: the aggregates are the orders' (refresh_aggregates' rule).
        "customers": f"""
INSERT INTO lifecycle_customer (id, tenant_id, external_id, email, first_name, last_name, locale, time_zone,
    marketing_consent, consent_updated_at, consent_source, unsubscribed_at, suppressed_at, suppression_reason,
    first_order_at, last_order_at, order_count, total_spent, created_at, updated_at)
SELECT %(cb)s + i, %(t)s, 'cust-' || i,
    'c' || i || '@' || (ARRAY['gmail.com', 'example.org', 'web.de', 'fastmail.com', 'outlook.com'])[1 + mod(i, 5)],
    (ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Linus', 'Margaret', 'Ken'])[1 + mod(i, 8)],
    (ARRAY['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Torvalds', 'Hamilton'])[1 + mod(i / 8, 7)],
    (ARRAY['en', 'de', 'fr', 'en-US', 'nl', ''])[1 + mod(i, 6)],
    (ARRAY['Europe/Berlin', 'Europe/London', 'America/New_York', 'America/Los_Angeles', 'Europe/Paris',
           'Asia/Tokyo', 'Australia/Sydney', ''])[1 + mod(i / 6, 8)],
    CASE WHEN rc < 0.6 THEN true WHEN rc < 0.7 THEN false END,
    CASE WHEN rc < 0.7 THEN created END,
    CASE WHEN rc < 0.6 THEN 'checkout' WHEN rc < 0.625 THEN 'unsubscribe' WHEN rc < 0.7 THEN 'checkout' ELSE '' END,
    CASE WHEN rc >= 0.6 AND rc < 0.625 THEN created + (%(now)s::timestamptz - created) * {u('i', 12)} END,
    CASE WHEN {u('i', 11)} < 0.01 THEN created + (%(now)s::timestamptz - created) * {u('i', 13)} END,
    CASE WHEN {u('i', 11)} < 0.01 THEN 'bounce' ELSE '' END,
    agg.first_at, agg.last_at, coalesce(agg.counted, 0), coalesce(agg.spent, 0), created,
    greatest(created, agg.last_at)
FROM (
    SELECT i, {u('i', 10)} AS rc,
        coalesce(f.first_any - {u('i', 9)} * interval '30 days',
                 %(now)s::timestamptz - {u('i', 9)} * interval '{HISTORY_DAYS} days') AS created
    FROM generate_series(1, %(n)s) i
    LEFT JOIN (SELECT customer_id, min(placed_at) AS first_any FROM lifecycle_order WHERE tenant_id = %(t)s
               GROUP BY customer_id) f ON f.customer_id = %(cb)s + i
) c
LEFT JOIN (
    SELECT customer_id, count(*) AS counted, min(coalesce(placed_at, paid_at)) AS first_at,
        max(coalesce(placed_at, paid_at)) AS last_at, sum(total - refunded_total) FILTER (WHERE currency = %(cur)s)
            AS spent
    FROM lifecycle_order WHERE tenant_id = %(t)s AND paid_at IS NOT NULL AND cancelled_at IS NULL
    GROUP BY customer_id
) agg ON agg.customer_id = %(cb)s + c.i""",
        "events": f"""
INSERT INTO lifecycle_event (tenant_id, customer_id, type, occurred_at, data, backfill, created_at, processed_at,
    process_attempts)
SELECT tenant_id, id, kind, at, data, false, at, at, 0
FROM (
    SELECT c.tenant_id, c.id, 'support.contacted' AS kind,
        c.created_at + (%(now)s::timestamptz - c.created_at) * {u('c.id * 2 + k', 21)} AS at,
        '{{"channel": "chat", "topic": "where is my order"}}'::jsonb AS data
    FROM lifecycle_customer c CROSS JOIN generate_series(0, 1) k
    WHERE c.tenant_id = %(t)s AND {u('c.id', 20)} < (CASE WHEN k = 0 THEN 0.04 ELSE 0.01 END)
    UNION ALL
    SELECT c.tenant_id, c.id, 'product.registered',
        coalesce(c.first_order_at, c.created_at) + (%(now)s::timestamptz - coalesce(c.first_order_at, c.created_at))
            * {u('c.id', 23)} * 0.1,
        '{{"product": "Grinder", "serial": "G-1"}}'::jsonb
    FROM lifecycle_customer c WHERE c.tenant_id = %(t)s AND c.first_order_at IS NOT NULL AND {u('c.id', 22)} < 0.06
) e ORDER BY at""",
    }


def _engine_statements(seed: int) -> dict[str, str]:
    """The journeys' enrollments and deliveries: the durable schedule's rows."""
    def u(expr: str, salt: int) -> str:
        return _u(expr, salt, seed)

    return {
        # Enrollment e follows the store's paid orders in order (rank 1 + (e-1)·paid/e_total); its
        # journey is e mod 4; e mod 10 = 0 is held out. Treated enrollments end when their last
        # email is final (BACKLOG after it was due), 5% exit after the first email.
        "enrollments": f"""
INSERT INTO journeys_enrollment (id, tenant_id, journey_id, customer_id, order_id, state, reason, enrolled_at,
    ended_at)
SELECT %(eb)s + e, %(t)s, (ARRAY[%(j1)s, %(j2)s, %(j3)s, %(j4)s])[1 + mod(e, 4)], o.customer_id, o.id,
    CASE WHEN mod(e, {HOLDOUT_EVERY}) = 0 THEN 'holdout'
         WHEN {u('e', 30)} < 0.05 AND o.paid_at + interval '1 day' <= %(now)s::timestamptz - %(backlog)s THEN 'exited'
         WHEN o.paid_at + interval '{STEP_OFFSETS_DAYS[-1]} days' <= %(now)s::timestamptz - %(backlog)s
              THEN 'completed'
         ELSE 'active' END,
    CASE WHEN mod(e, {HOLDOUT_EVERY}) = 0 THEN 'holdout group'
         WHEN {u('e', 30)} < 0.05 AND o.paid_at + interval '1 day' <= %(now)s::timestamptz - %(backlog)s
              THEN 'order.placed'
         ELSE '' END,
    o.paid_at,
    CASE WHEN mod(e, {HOLDOUT_EVERY}) = 0 THEN NULL
         WHEN {u('e', 30)} < 0.05 AND o.paid_at + interval '1 day' <= %(now)s::timestamptz - %(backlog)s
              THEN o.paid_at + interval '1 day'
         WHEN o.paid_at + interval '{STEP_OFFSETS_DAYS[-1]} days' <= %(now)s::timestamptz - %(backlog)s
              THEN o.paid_at + interval '{STEP_OFFSETS_DAYS[-1]} days' + %(backlog)s END
FROM generate_series(1, %(e_total)s) e
JOIN (SELECT id, customer_id, paid_at, row_number() OVER (ORDER BY id) AS rn FROM lifecycle_order
      WHERE tenant_id = %(t)s AND paid_at IS NOT NULL) o
  ON o.rn = 1 + floor((e - 1)::numeric * %(paid)s / %(e_total)s)""",
        # Delivery d is step (d-1) mod 3 of the ((d-1)/3 + 1)-th treated enrollment.
        "deliveries": f"""
INSERT INTO journeys_delivery (tenant_id, enrollment_id, step_id, journey_id, customer_id, message_class, priority,
    state, reason, due_at, waiting_for, attempts, message_id, esp_message_id, sent_at, delivered_at, opened_at,
    clicked_at, bounced_at, history, created_at, updated_at)
SELECT %(t)s, en.id, (%(steps)s::bigint[])[1 + 3 * mod(en.id - %(eb)s, 4) + pos], en.journey_id, en.customer_id,
    'marketing', 0, state,
    CASE state WHEN 'skipped' THEN CASE WHEN exited THEN 'exited: order.placed' ELSE 'no marketing consent' END
               WHEN 'failed' THEN 'ESP rejected the message' WHEN 'ambiguous' THEN 'worker lost mid-send'
               ELSE '' END,
    due, '', CASE WHEN state IN ('sent', 'failed', 'ambiguous') THEN 1 ELSE 0 END,
    CASE WHEN state IN ('sent', 'ambiguous') THEN '<d' || d || '@mail.bench.example>' ELSE '' END,
    CASE WHEN state = 'sent' THEN 'esp-' || d ELSE '' END,
    sent, delivered, opened, CASE WHEN opened IS NOT NULL AND {u('d', 43)} < 0.2
        THEN least(%(now)s::timestamptz, opened + interval '2 minutes') END,
    CASE WHEN state = 'sent' AND delivered IS NULL THEN sent + interval '20 seconds' END,
    CASE WHEN state IN ('skipped', 'failed') THEN
        jsonb_build_array(jsonb_build_object('at', due, 'state', state, 'reason', 'seeded'))
    ELSE '[]'::jsonb END,
    en.enrolled_at, coalesce(opened, delivered, sent, due)
FROM (
    SELECT x.*,
        CASE WHEN state = 'sent' THEN due + interval '30 seconds' END AS sent,
        CASE WHEN state = 'sent' AND {u('d', 41)} < 0.98 THEN due + interval '40 seconds' END AS delivered,
        CASE WHEN state = 'sent' AND {u('d', 41)} < 0.44 THEN
             least(%(now)s::timestamptz, due + interval '1 minute' + {u('d', 42)} * interval '2 days') END AS opened
    FROM (
        SELECT d, pos, en.id, en.journey_id, en.customer_id, en.enrolled_at,
            en.enrolled_at + (ARRAY[{', '.join(str(x) for x in STEP_OFFSETS_DAYS)}])[1 + pos] * interval '1 day' AS due,
            en.state = 'exited' AND pos > 0 AS exited,
            CASE WHEN en.state = 'exited' AND pos > 0 THEN 'skipped'
                 WHEN en.enrolled_at + (ARRAY[{', '.join(str(x) for x in STEP_OFFSETS_DAYS)}])[1 + pos]
                      * interval '1 day' > %(now)s::timestamptz - %(backlog)s
                      THEN CASE WHEN {u('d', 40)} < 0.05 THEN 'deferred' ELSE 'pending' END
                 WHEN {u('d', 40)} < 0.90 THEN 'sent' WHEN {u('d', 40)} < 0.97 THEN 'skipped'
                 WHEN {u('d', 40)} < 0.999 THEN 'failed' ELSE 'ambiguous' END AS state
        FROM generate_series(1, %(d)s) d
        CROSS JOIN LATERAL (SELECT mod(d - 1, {STEPS})::int AS pos, (d - 1) / {STEPS} + 1 AS tr) k
        JOIN journeys_enrollment en ON en.id = %(eb)s + k.tr + (k.tr - 1) / {HOLDOUT_EVERY - 1}
    ) x
) en""",
    }


def _program_statements(seed: int) -> dict[str, str]:
    """Loyalty ledger and accounts, survey requests and answers."""
    def u(expr: str, salt: int) -> str:
        return _u(expr, salt, seed)

    return {
        # Loyalty: three in ten customers who ordered hold an account: one earn entry (a point per
        # unit spent), and for three in ten of those a redemption of 100 points; balances = entries.
        "ledger": f"""
INSERT INTO loyalty_ledgerentry (tenant_id, account_id, customer_id, kind, source, reason, amount, points,
    pending_points, debt_points, currency, created_at)
SELECT a.tenant_id, a.id, a.customer_id, x.kind, x.source, x.reason, x.points, x.points, 0, 0, %(cur)s, x.at
FROM loyalty_loyaltyaccount a
JOIN lifecycle_customer c ON c.id = a.customer_id
CROSS JOIN LATERAL (
    SELECT 'earn' AS kind, 'import:opening-balance' AS source, 'Points for past orders' AS reason,
        a.lifetime_earned AS points, c.last_order_at AS at
    UNION ALL
    SELECT 'redeem', 'import:redeemed', 'Redeemed for a discount', -100,
        c.last_order_at + (%(now)s::timestamptz - c.last_order_at) * {u('c.id', 52)}
    WHERE a.lifetime_earned - a.balance = 100
) x
WHERE a.tenant_id = %(t)s""",
        "accounts": f"""
INSERT INTO loyalty_loyaltyaccount (tenant_id, customer_id, balance, pending, debt, lifetime_earned,
    last_activity_at, created_at)
SELECT tenant_id, id, earned - CASE WHEN redeemed THEN 100 ELSE 0 END, 0, 0, earned, last_order_at, first_order_at
FROM (
    SELECT tenant_id, id, last_order_at, first_order_at, floor(total_spent)::int AS earned,
        floor(total_spent) >= 100 AND {u('id', 51)} < 0.3 AS redeemed
    FROM lifecycle_customer WHERE tenant_id = %(t)s AND order_count > 0 AND {u('id', 50)} < 0.3
) a""",
        # One NPS question to one in ten delivered orders a week after delivery, answered by 35%.
        "survey_requests": f"""
INSERT INTO feedback_surveyrequest (tenant_id, survey_id, customer_id, order_id, asked_because, asked_at)
SELECT tenant_id, %(survey)s, customer_id, id, 'order delivered a week ago', delivered_at + interval '7 days'
FROM lifecycle_order
WHERE tenant_id = %(t)s AND delivered_at IS NOT NULL AND delivered_at + interval '7 days' <= %(now)s
    AND {u('id', 60)} < 0.1""",
        "survey_responses": f"""
INSERT INTO feedback_surveyresponse (tenant_id, request_id, survey_id, customer_id, order_id, score, comment,
    category, state, answered_at, finalized_at, edits, updated_at)
SELECT tenant_id, id, survey_id, customer_id, order_id, score, '',
    CASE WHEN score <= 6 THEN 'negative' WHEN score >= 9 THEN 'positive' ELSE 'neutral' END, 'final', at, at, 0, at
FROM (
    SELECT r.*, least(10, floor(11 * power({u('r.id', 62)}, 0.6)))::int AS score,
        least(%(now)s::timestamptz, r.asked_at + {u('r.id', 63)} * interval '2 days') AS at
    FROM feedback_surveyrequest r WHERE r.tenant_id = %(t)s AND {u('r.id', 61)} < 0.35
) x""",
    }


def _statements(seed: int) -> dict[str, str]:
    # Parameters: t (tenant id), cur (currency), now, n/m/d (sizes), cb/ob/pb/eb (id bases), j1..j4
    # (journey ids), steps (their step ids, journey-major), e_total, paid (the store's paid orders).
    return {**_commerce_statements(seed), **_customer_statements(seed), **_engine_statements(seed),
            **_program_statements(seed)}



# The order the statements run in, and the table each fills (for the row counts).
STEPS_ORDER = [
    ("products", "lifecycle_product"), ("orders", "lifecycle_order"), ("order_lines", "lifecycle_orderline"),
    ("refunds", "lifecycle_refund"), ("customers", "lifecycle_customer"), ("events", "lifecycle_event"),
    ("enrollments", "journeys_enrollment"), ("deliveries", "journeys_delivery"),
    ("accounts", "loyalty_loyaltyaccount"), ("ledger", "loyalty_ledgerentry"),
    ("survey_requests", "feedback_surveyrequest"), ("survey_responses", "feedback_surveyresponse"),
]


def _store_config(tenant: Tenant) -> dict[str, object]:
    """The store's few configuration rows (journeys and their steps, the survey, the loyalty program), by the ORM."""
    steps: list[int] = []
    journeys: list[int] = []
    for name, trigger, subject in JOURNEYS:
        template = EmailTemplate.objects.for_tenant(tenant).create(
            tenant=tenant, name=name, subject=subject, body="<p>Hello {{ first_name }}</p>")
        journey = Journey.objects.for_tenant(tenant).create(
            tenant=tenant, name=name, status=Journey.Status.ACTIVE, trigger=trigger,
            holdout_percent=100 // HOLDOUT_EVERY)
        journeys.append(journey.pk)
        previous = 0
        for position, offset in enumerate(STEP_OFFSETS_DAYS):
            steps.append(Step.objects.for_tenant(tenant).create(
                tenant=tenant, journey=journey, position=position, name=f"Email {position + 1}",
                wait=dt.timedelta(days=offset - previous), template=template).pk)
            previous = offset
    survey = Survey.objects.for_tenant(tenant).create(tenant=tenant, name="NPS", kind=Survey.Kind.NPS, key="nps")
    Program.objects.for_tenant(tenant).create(tenant=tenant)
    return {"j1": journeys[0], "j2": journeys[1], "j3": journeys[2], "j4": journeys[3], "steps": steps,
            "survey": survey.pk}


def _seed_store(cursor, tenant: Tenant, sizes: Sizes, *, seed: int, now: dt.datetime,
                step_done: Callable[[str, int, float], None]) -> None:
    statements = _statements(seed)
    params: dict[str, object] = {
        "t": tenant.pk, "cur": tenant.currency, "now": now, "backlog": BACKLOG, "n": sizes.customers,
        "m": sizes.orders, "d": sizes.deliveries,
        "cb": _next_id(cursor, "lifecycle_customer"), "ob": _next_id(cursor, "lifecycle_order"),
        "pb": _next_id(cursor, "lifecycle_product"), "eb": _next_id(cursor, "journeys_enrollment"),
        **_store_config(tenant),
    }
    treated = math.ceil(sizes.deliveries / STEPS)
    params["e_total"] = treated + (treated - 1) // (HOLDOUT_EVERY - 1)
    for name, table in STEPS_ORDER:
        if name == "enrollments":
            cursor.execute("SELECT count(*) FROM lifecycle_order WHERE tenant_id = %s AND paid_at IS NOT NULL",
                           [tenant.pk])
            params["paid"] = cursor.fetchone()[0]
            if not params["paid"]:
                raise SeedError("no paid order to enroll: seed more orders")
        started = time.monotonic()
        cursor.execute(statements[name], params)
        step_done(f"{tenant.slug}: {name}", cursor.rowcount, time.monotonic() - started)
        if name in ("products", "orders", "customers", "enrollments"):
            _sync_sequence(cursor, table)


def store_seed_scale(*, slug: str, sizes: Sizes, seed: int = 1, now: dt.datetime | None = None,
                     neighbour_share: float = 0.1, step_done: Callable[[str, int, float], None] | None = None,
                     ) -> Result:
    """Fill the store `slug` (created if missing) and, with neighbour_share > 0, a smaller neighbour store.

    PostgreSQL only. Refuses a store that already has customers (SeedError): a store is seeded
    once. Foreign-key triggers are off during the load (session_replication_role = replica; the
    rows are consistent by construction), so the connecting role must be a superuser. Ends with
    ANALYZE of every table written (VACUUM is the caller's: it cannot run in a transaction).
    """
    if connection.vendor != "postgresql":
        raise SeedError("seed_scale writes with PostgreSQL's set-based SQL; this database is "
                        f"{connection.vendor}. Point DATABASE_URL at PostgreSQL.")
    now = now or dt.datetime.now(dt.UTC)
    step_done = step_done or (lambda *_: None)
    seconds: dict[str, float] = {}

    def done(name: str, rows: int, took: float) -> None:
        seconds[name] = round(took, 2)
        step_done(name, rows, took)

    with system_scope():
        stores = [(slug, sizes)]
        if neighbour_share > 0:
            stores.append((f"{slug}-neighbour", sizes.scaled(neighbour_share)))
        found = {t.slug: t for t in Tenant.objects.filter(slug__in=[store_slug for store_slug, _ in stores])}
        for store_slug, tenant in found.items():  # all checked before anything is written
            if Customer.objects.for_tenant(tenant).exists():
                raise SeedError(f"the store {store_slug!r} already has customers: seed_scale fills a store once "
                                "(drop the database, or choose another --tenant)")
        tenants = [found.get(store_slug) or tenant_create(slug=store_slug, name=store_slug.replace("-", " ").title(),
                                                          currency="EUR", time_zone="Europe/Berlin")[0]
                   for store_slug, _ in stores]
        rebuild = sizes.customers >= REBUILD_INDEXES_FROM
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
            secondary: list[tuple[str, str]] = []
            if rebuild:
                cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                               "AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM pg_constraint)",
                               [BULK_TABLES])
                secondary = cursor.fetchall()
                for name, _ in secondary:
                    cursor.execute(f'DROP INDEX "{name}"')
            for index, (tenant, (_, store_sizes)) in enumerate(zip(tenants, stores, strict=True)):
                _seed_store(cursor, tenant, store_sizes, seed=seed * 2 + index, now=now, step_done=done)
            # The dispatcher's queue, which the triggers (off for this load) keep in the application.
            started = time.monotonic()
            done("due queue", due_queue_fill(), time.monotonic() - started)
            if secondary:
                started = time.monotonic()
                for _, definition in secondary:
                    cursor.execute(definition)
                done(f"indexes ({len(secondary)} rebuilt)", len(secondary), time.monotonic() - started)
            cursor.execute("SET LOCAL session_replication_role = origin")
            started = time.monotonic()
            for table in BULK_TABLES:
                cursor.execute(f"ANALYZE {table}")
            done("analyze", len(BULK_TABLES), time.monotonic() - started)
            rows = {}
            for table in BULK_TABLES:
                cursor.execute(f"SELECT count(*) FROM {table}")
                rows[table] = cursor.fetchone()[0]
    return Result(tenant_id=tenants[0].pk, neighbour_id=tenants[1].pk if len(tenants) > 1 else None,
                  rows=rows, seconds=seconds)
