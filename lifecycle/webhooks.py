"""Inbound storefront webhooks (Shopify, WooCommerce): verify, then hand over.

Each view reads `request.body` first (the exact bytes the platform signed) and checks
the HMAC over them before anything parses the body. A request that does not verify
stores nothing at all. What a verified delivery does is `platforms.ingest`'s job.

The store connection found by the shop domain (or the URL's id) names the tenant: that lookup
spans tenants (`system_scope`), and everything after it runs in that tenant's scope.

Answers: 200 for processed, ignored and duplicate deliveries; 400 for a signed payload
we could not use (kept as a failed delivery); 401 for a bad signature or an unknown
shop; 404 for an unknown WooCommerce connection. Never a redirect: WooCommerce counts
a 301 as delivered and drops the body.
"""

import hashlib
import re

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import clock
from .models import StoreConnection, WebhookDelivery
from .platforms import ingest
from .platforms.common import signature_matches
from .platforms.woocommerce import source_matches
from .tenancy import activate, system_scope

TOPIC_MAX_LENGTH = WebhookDelivery._meta.get_field("topic").max_length
DEDUPE_KEY_MAX_LENGTH = WebhookDelivery._meta.get_field("dedupe_key").max_length
DELIVERY_ID_MAX_LENGTH = WebhookDelivery._meta.get_field("delivery_id").max_length
# WooCommerce's ping when a webhook is saved: a form body, unsigned; anything but 200 is
# reported to the merchant as an error.
WOOCOMMERCE_PING = re.compile(rb"\Awebhook_id=\d+\Z")


def _error(status: int, code: str, message: str, fields: dict[str, list[str]] | None = None) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, "fields": fields or {}}, status=status)


def _bad_signature(message: str) -> JsonResponse:
    return _error(401, "webhooks.bad_signature", message)


def _answer(outcome: ingest.Outcome) -> JsonResponse:
    if outcome.status == WebhookDelivery.Status.FAILED:
        # Kept as a failed delivery with its body; the platform sees why.
        return _error(400, "webhooks.invalid_payload", outcome.detail)
    return JsonResponse({"status": "duplicate" if outcome.duplicate else outcome.status, "detail": outcome.detail})


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _bounded_key(topic: str, key: str) -> str:
    if len(key) <= DEDUPE_KEY_MAX_LENGTH:
        return key
    return f"{topic}:sha256-of-key:{_sha256(key.encode())}"


def shopify_dedupe_key(topic: str, headers, body: bytes) -> str:
    """(shop, topic, X-Shopify-Event-Id): the shop is the connection the key is stored under.

    One merchant action can fan out to several topics under one event id, so the topic
    is part of the key. Without an event id, the per-delivery webhook id; without that,
    the body itself.
    """
    event_id = headers.get("X-Shopify-Event-Id", "").strip()
    webhook_id = headers.get("X-Shopify-Webhook-Id", "").strip()
    if event_id:
        key = f"{topic}:event:{event_id}"
    elif webhook_id:
        key = f"{topic}:webhook:{webhook_id}"
    else:
        key = f"{topic}:sha256:{_sha256(body)}"
    return _bounded_key(topic, key)


@csrf_exempt
@require_POST
def shopify(request: HttpRequest) -> JsonResponse:
    body = request.body
    signature = request.headers.get("X-Shopify-Hmac-Sha256", "").strip()
    shop_domain = request.headers.get("X-Shopify-Shop-Domain", "").strip().lower()
    topic = request.headers.get("X-Shopify-Topic", "").strip()[:TOPIC_MAX_LENGTH]
    if not signature:
        return _bad_signature("The X-Shopify-Hmac-Sha256 header is missing.")
    missing = {name: ["is required"] for name, value in
               (("X-Shopify-Shop-Domain", shop_domain), ("X-Shopify-Topic", topic)) if not value}
    if missing:
        return _error(400, "webhooks.missing_header", f"{', '.join(missing)}: header required.", missing)
    # The shop domain names the tenant (as an API key does), so this lookup spans tenants.
    with system_scope():
        connection = (StoreConnection.all_tenants.select_related("tenant")
                      .filter(platform=StoreConnection.Platform.SHOPIFY, shop_domain=shop_domain,
                              disabled_at__isnull=True).first())
    if connection is not None:
        activate(connection.tenant_id)
    secrets = connection.verification_secrets(clock.now()) if connection else []
    # An unknown shop gets the same answer as a bad signature: no way to probe which
    # shops are connected.
    if not signature_matches(body, signature, secrets):
        return _bad_signature("The X-Shopify-Hmac-Sha256 signature does not match this shop's webhook secret.")
    received = ingest.Received(
        connection=connection, topic=topic, dedupe_key=shopify_dedupe_key(topic, request.headers, body),
        delivery_id=request.headers.get("X-Shopify-Webhook-Id", "").strip()[:DELIVERY_ID_MAX_LENGTH], body=body,
    )
    return _answer(ingest.webhook_delivery_ingest(received=received, handle=ingest.shopify_handle))


@csrf_exempt
@require_POST
def woocommerce(request: HttpRequest, public_id: str) -> JsonResponse:
    body = request.body
    # The opaque id in the URL names the tenant's connection, so this lookup spans tenants.
    with system_scope():
        connection = (StoreConnection.all_tenants.select_related("tenant")
                      .filter(platform=StoreConnection.Platform.WOOCOMMERCE, public_id=public_id,
                              disabled_at__isnull=True).first())
    if connection is None:
        return _error(404, "webhooks.unknown_connection", "No WooCommerce store is connected at this URL.")
    activate(connection.tenant_id)
    if WOOCOMMERCE_PING.match(body):
        return JsonResponse({"status": "ok"}, status=200)
    signature = request.headers.get("X-WC-Webhook-Signature", "").strip()
    if not signature:
        return _bad_signature("The X-WC-Webhook-Signature header is missing.")
    if not signature_matches(body, signature, connection.verification_secrets(clock.now())):
        return _bad_signature("The X-WC-Webhook-Signature signature does not match this store's webhook secret.")
    topic = request.headers.get("X-WC-Webhook-Topic", "").strip()[:TOPIC_MAX_LENGTH]
    if not topic:
        return _error(400, "webhooks.missing_header", "X-WC-Webhook-Topic: header required.",
                      {"X-WC-Webhook-Topic": ["is required"]})
    source = request.headers.get("X-WC-Webhook-Source", "").strip()
    ignore_reason = ""
    if source and connection.site_url and not source_matches(connection.site_url, source):
        # Signed with this store's secret but sent by another site: a staging copy of the
        # WordPress database carries the same webhooks. Kept (it can be replayed if the
        # store really moved), not ingested, and 200 so WooCommerce does not disable it.
        ignore_reason = f"sent by {source}, not the connected site {connection.site_url}: stored, not ingested"
    received = ingest.Received(
        connection=connection, topic=topic,
        # WooCommerce has no event id (its delivery id is time-based): the body is the event.
        dedupe_key=_bounded_key(topic, f"{topic}:sha256:{_sha256(body)}"),
        delivery_id=request.headers.get("X-WC-Webhook-Delivery-ID", "").strip()[:DELIVERY_ID_MAX_LENGTH],
        body=body, ignore_reason=ignore_reason,
    )
    return _answer(ingest.webhook_delivery_ingest(received=received, handle=ingest.woocommerce_handle))
