"""Payload fixtures and senders that sign exactly as Shopify and WooCommerce do."""

import base64
import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from django.test import Client

from lifecycle.models import Customer, Event, Order, Refund, WebhookDelivery

PAYLOADS = Path(__file__).parent / "payloads"

SHOPIFY_SECRET = "shpss_acme_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SHOPIFY_SHOP = "acme-coffee.myshopify.com"
OTHER_SHOPIFY_SECRET = "shpss_globex_a1b2c3d4e5f60718293a4b5c6d7e8f90"
OTHER_SHOPIFY_SHOP = "globex-tea.myshopify.com"
WOO_SECRET = "wc-acme-k8#Lp2&vQ9!zR4"
WOO_SITE = "https://shop.example.com"
OTHER_WOO_SECRET = "wc-globex-Yt7$Wm3^Hn6"


def raw(name: str) -> bytes:
    """A fixture's exact bytes, as the platform would put them on the wire."""
    return (PAYLOADS / name).read_bytes()


def load(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads(raw(name)))


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def php_json(payload: dict[str, Any]) -> bytes:
    """wp_json_encode: compact, "/" as "\\/", non-ASCII as \\uXXXX."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def sign(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, raw body)): Shopify's and WooCommerce's signature."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify_post(body: bytes, *, topic: str, secret: str = SHOPIFY_SECRET, shop: str = SHOPIFY_SHOP,
                 event_id: str | None = "evt-1", webhook_id: str | None = "wh-1", path: str = "/webhooks/shopify",
                 signature: str | None = None, omit: tuple[str, ...] = ()):
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature if signature is not None else sign(secret, body),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2024-10",
        "X-Shopify-Triggered-At": "2026-11-20T09:15:09.123456789Z",
    }
    if event_id:
        headers["X-Shopify-Event-Id"] = event_id
    if webhook_id:
        headers["X-Shopify-Webhook-Id"] = webhook_id
    for name in omit:
        headers.pop(name)
    return Client().post(path, data=body, content_type="application/json", headers=headers)


def woo_post(public_id: str, body: bytes, *, topic: str = "order.created", secret: str = WOO_SECRET,
             source: str | None = WOO_SITE + "/", signature: str | None = None, trailing_slash: bool = False,
             delivery_id: str = "8c3f1e0a2b4d6f8e", omit: tuple[str, ...] = ()):
    resource, _, event = topic.partition(".")
    headers = {
        "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": signature if signature is not None else sign(secret, body),
        "X-WC-Webhook-ID": "17",
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }
    if source is not None:
        headers["X-WC-Webhook-Source"] = source
    for name in omit:
        headers.pop(name)
    path = f"/webhooks/woocommerce/{public_id}" + ("/" if trailing_slash else "")
    return Client().post(path, data=body, content_type="application/json", headers=headers)


def counts(tenant) -> dict[str, int]:
    return {
        "orders": Order.objects.for_tenant(tenant).count(),
        "customers": Customer.objects.for_tenant(tenant).count(),
        "events": Event.objects.for_tenant(tenant).count(),
        "refunds": Refund.objects.for_tenant(tenant).count(),
        "deliveries": WebhookDelivery.objects.for_tenant(tenant).count(),
    }


NOTHING = {"orders": 0, "customers": 0, "events": 0, "refunds": 0, "deliveries": 0}


def event_types(tenant, **filters) -> list[str]:
    return list(Event.objects.for_tenant(tenant).filter(**filters).order_by("pk").values_list("type", flat=True))
