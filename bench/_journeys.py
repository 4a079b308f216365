"""Journey data for the dispatch and crash benchmarks, built with set-based SQL.

One tenant (quiet hours off: start == end; frequency cap 0, so the gate passes), 200 products,
N customers with consent and an email address, one paid order each with two lines, order.placed
and order.paid events, one active marketing journey with one email step and a real EmailTemplate
(an items table, a button, a German translation), one active enrollment per customer and one
Delivery per enrollment. The deliveries are written as `waiting` (not claimable) so that the bench
decides the moment they all become due: `make_due` flips them in one UPDATE.

The few configuration rows go through the ORM (real models, real validation); the N-sized tables
are INSERT … SELECT generate_series, one statement each.
"""
# ruff: noqa: S608 - the SQL here is built from integer ids and sizes the bench itself chose

import datetime as dt

TEMPLATE_BODY = """<h1>How do you like it, {{ first_name }}?</h1>
<p>Thanks again for order {{ order.number }} ({{ order.total }}). It has been a few days: we would love
to hear how {{ order.item_titles }} are working out for you.</p>
<table class="items">{% for item in order.items %}
<tr><td><img src="{{ item.image_url }}" alt="{{ item.title }}" width="64" height="64"></td>
<td><a href="{{ item.url }}">{{ item.title }}</a> &times; {{ item.quantity }}</td></tr>{% endfor %}
</table>
<p><a class="button" href="https://shop.bench.example/reviews?order={{ order.number|urlencode }}">Write a review</a></p>
<p>Questions? Just reply to this email, {{ customer.first_name }}: a person reads every answer.</p>"""

TEMPLATE_DE = {
    "subject": "{{ first_name }}, wie gefällt dir deine Bestellung {{ order.number }}?",
    "preheader": "Zwei Minuten für eine Bewertung",
    "body": """<h1>Wie gefällt es dir, {{ first_name }}?</h1>
<p>Danke für deine Bestellung {{ order.number }} ({{ order.total }}).</p>
<table class="items">{% for item in order.items %}
<tr><td><img src="{{ item.image_url }}" alt="{{ item.title }}" width="64" height="64"></td>
<td><a href="{{ item.url }}">{{ item.title }}</a> &times; {{ item.quantity }}</td></tr>{% endfor %}
</table>
<p><a class="button" href="https://shop.bench.example/reviews?order={{ order.number|urlencode }}">Bewerten</a></p>""",
}


def create_config(slug: str = "bench") -> dict[str, int]:
    """Tenant, template, journey and step through the ORM. Needs django_setup() first."""
    from journeys.models import EmailTemplate, Journey, Step
    from lifecycle.models import Tenant

    tenant = Tenant(slug=slug, name="Bench Coffee Roasters", time_zone="Europe/Berlin", currency="EUR",
                    sender_name="Bench Coffee", sender_email="hello@shop.bench.example",
                    reply_to="care@shop.bench.example",
                    postal_address="Bench Coffee Roasters GmbH\nKastanienallee 1\n10435 Berlin, Germany",
                    quiet_hours_start=dt.time(0), quiet_hours_end=dt.time(0), frequency_cap_hours=0)
    tenant.full_clean()
    tenant.save()
    template = EmailTemplate.objects.for_tenant(tenant).create(
        tenant=tenant, name="Review request", subject="{{ first_name }}, how do you like order {{ order.number }}?",
        preheader="Two minutes for a review, and our thanks", body=TEMPLATE_BODY, translations={"de": TEMPLATE_DE},
        signature="Mia from Bench Coffee")
    journey = Journey.objects.for_tenant(tenant).create(
        tenant=tenant, name="Review request", trigger=Journey.Trigger.ORDER_DELIVERED, status=Journey.Status.ACTIVE,
        message_class=Journey.MessageClass.MARKETING, exit_events=["order.refunded", "order.cancelled"],
        filters={"consent": "required"})
    step = Step.objects.for_tenant(tenant).create(
        tenant=tenant, journey=journey, position=1, wait=dt.timedelta(days=3), kind=Step.Kind.EMAIL,
        template=template, name="Ask for a review")
    return {"tenant": tenant.pk, "journey": journey.pk, "step": step.pk, "template": template.pk}


def bulk_sql(ids: dict[str, int], n: int) -> list[tuple[str, str]]:
    """(what, statement) pairs that build N customers … N waiting deliveries for the config `ids`."""
    t, j, s = ids["tenant"], ids["journey"], ids["step"]
    return [
        ("200 products", f"""
            INSERT INTO lifecycle_product (tenant_id, external_id, sku, title, url, image_url, collections, created_at,
                                           updated_at)
            SELECT {t}, 'p-' || g, 'SKU-' || lpad(g::text, 4, '0'),
                   (ARRAY['Ethiopia Yirgacheffe', 'Colombia Huila', 'Kenya AA', 'House Espresso',
                          'Decaf Swiss Water'])[1 + g % 5] || ' ' || (250 * (1 + g % 4)) || ' g',
                   'https://shop.bench.example/products/p-' || g, 'https://cdn.bench.example/p/' || g || '.jpg',
                   jsonb_build_array('coffee'), now(), now()
            FROM generate_series(1, 200) g"""),
        (f"{n} customers", f"""
            INSERT INTO lifecycle_customer (tenant_id, external_id, email, first_name, last_name, locale, time_zone,
                marketing_consent, consent_updated_at, consent_source, suppression_reason, first_order_at,
                last_order_at, order_count, total_spent, created_at, updated_at)
            SELECT {t}, 'c-' || g, 'customer' || g || '@mail.bench.example',
                   (ARRAY['Ada', 'Grace', 'Linus', 'Mia', 'Jonas', 'Léa'])[1 + g % 6],
                   (ARRAY['Lovelace', 'Hopper', 'Meyer', 'Schmidt'])[1 + g % 4],
                   (ARRAY['en', 'de-DE', 'en-GB', 'de', 'fr'])[1 + g % 5], '',
                   true, now() - interval '10 days', 'api', '', now() - interval '10 days',
                   now() - interval '10 days', 1, 42.50, now(), now()
            FROM generate_series(1, {n}) g"""),
        (f"{n} orders", f"""
            INSERT INTO lifecycle_order (tenant_id, customer_id, external_id, number, status, placed_at, paid_at,
                fulfilled_at, delivered_at, cancel_reason, currency, subtotal, discount_total, total, refunded_total,
                discount_codes, landing_site, referring_site, referral_code, source, created_at, updated_at)
            SELECT {t}, c.id, 'o-' || c.id, '#' || (100000 + c.id), 'delivered', now() - interval '10 days',
                   now() - interval '10 days', now() - interval '8 days', now() - interval '3 days', '', 'EUR',
                   47.50, 5.00, 42.50, 0, '[]'::jsonb, '', '', '', 'api', now(), now()
            FROM lifecycle_customer c WHERE c.tenant_id = {t}"""),
        (f"{2 * n} order lines", f"""
            INSERT INTO lifecycle_orderline (tenant_id, order_id, position, external_id, product_external_id, sku,
                title, quantity, unit_price, product_id)
            SELECT {t}, o.id, k, o.external_id || '-' || k, p.external_id, p.sku, p.title, 1 + (o.id + k) % 3,
                   14.50, p.id
            FROM lifecycle_order o CROSS JOIN generate_series(0, 1) k
            CROSS JOIN (SELECT min(id) AS first FROM lifecycle_product WHERE tenant_id = {t}) f
            JOIN lifecycle_product p ON p.tenant_id = {t} AND p.id = f.first + (o.id * 7 + k * 13) % 200
            WHERE o.tenant_id = {t}"""),
        (f"{3 * n} events", f"""
            INSERT INTO lifecycle_event (tenant_id, customer_id, order_id, type, occurred_at, data, backfill,
                created_at, processed_at, process_attempts)
            SELECT {t}, o.customer_id, o.id, e.type, now() - e.ago, '{{}}'::jsonb, false, now(), now(), 1
            FROM lifecycle_order o CROSS JOIN (VALUES ('order.placed', interval '10 days'),
                 ('order.paid', interval '10 days'), ('order.delivered', interval '3 days')) e(type, ago)
            WHERE o.tenant_id = {t}"""),
        (f"{n} enrollments", f"""
            INSERT INTO journeys_enrollment (tenant_id, journey_id, customer_id, order_id, trigger_event_id, state,
                reason, enrolled_at)
            SELECT {t}, {j}, o.customer_id, o.id, NULL, 'active', '', now() - interval '3 days'
            FROM lifecycle_order o WHERE o.tenant_id = {t}"""),
        (f"{n} deliveries (waiting)", f"""
            INSERT INTO journeys_delivery (tenant_id, enrollment_id, step_id, journey_id, customer_id, message_class,
                priority, state, reason, due_at, waiting_for, attempts, message_id, esp_message_id, history,
                created_at, updated_at)
            SELECT {t}, e.id, {s}, {j}, e.customer_id, 'marketing', 0, 'waiting', 'bench: not due yet', NULL,
                   'bench.go', 0, '', '', '[]'::jsonb, now(), now()
            FROM journeys_enrollment e WHERE e.tenant_id = {t}"""),
        ("ANALYZE", "ANALYZE"),
    ]


def make_due_sql(spread_s: float) -> str:
    """All waiting deliveries become pending, due within the `spread_s` seconds before now."""
    # Now as a literal and a spot in [0, 1) from the id: Citus refuses random() (volatile), and now() (stable)
    # next to a column, in an UPDATE across shards.
    # (to_timestamp() of seconds: timestamptz - interval is stable too.)
    now = dt.datetime.now(dt.UTC).timestamp()
    return f"""
        UPDATE journeys_delivery SET state = 'pending', reason = '', waiting_for = '',
               due_at = to_timestamp({now} - ((hashint8(id) & 65535) / 65536.0) * {spread_s}),
               updated_at = to_timestamp({now})
        WHERE state = 'waiting' AND waiting_for = 'bench.go'"""
