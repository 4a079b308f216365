"""Outbound webhook steps: a journey reaches the customer through the store's own system (its app, its SMS
provider, its Slack) with a signed JSON POST.

The contract (README, *Outbound webhook steps*):

- When a webhook step passes the send gate (consent, preferences, quiet hours, the frequency cap — as an
  email does), `webhook_call_queue` writes one `WebhookCall` for its delivery, with the JSON body fixed
  once and an idempotency key (`Idempotency-Key` header and the body's `id`) that never changes across
  retries; the delivery is recorded as sent and the journey moves on.
- `webhook_call_attempt` POSTs it: `X-Lifecycle-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
  "<t>.<body>">` with the store's secret (and a second `v1=` with the previous secret for a day after a
  rotation). A receiver recomputes it, compares in constant time and refuses a `t` older than a few
  minutes: a replayed request is refused.
- A 2xx is delivered. A network error, a timeout, 408, 409, 425, 429 or 5xx is retried with exponential
  backoff and full jitter until JOURNEY_WEBHOOK_RETRY_WINDOW_SECONDS after the call was made (a day by
  default); any other answer (a 4xx: the receiver refuses it) fails at once. Every attempt is a
  `WebhookAttempt` row: status, latency, error, the start of the response.
- Delivery is at least once. A worker that dies after the receiver answered and before the answer is
  recorded leaves the call leased; the sweep tries it again after the lease, with the same key and body.
  No database closes that window end to end, so the receiver deduplicates by the key: then each call is
  accepted exactly once.
"""

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import re
import secrets
import socket
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from lifecycle import clock, crypto
from lifecycle.models import Tenant
from lifecycle.timeline import event_append

from .enrollment import delivery_history
from .models import Delivery, WebhookAttempt, WebhookCall, WebhookSecret
from .step_refs import enrollment_variables

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Lifecycle-Signature"
EVENT_TYPE = "journey.webhook"
# A rotated-out secret keeps signing beside the new one this long, so a receiver can switch over.
ROTATION_GRACE = dt.timedelta(days=1)
# Answers that say "try again later"; every other 4xx is the receiver refusing the call for good.
TRANSIENT_STATUSES = {408, 409, 425, 429}
# Kept of each answer for the attempt log: enough to read an error message, not a whole page.
SNIPPET_CHARS = 500
# The worker holds a call this long beyond its request timeout; past it, it died and the sweep retries.
LEASE_MARGIN = dt.timedelta(seconds=30)
# Calls queued per sweep run; the rest wait for the next run.
SWEEP_BATCH = 500


def retry_window() -> dt.timedelta:
    return dt.timedelta(seconds=float(getattr(settings, "JOURNEY_WEBHOOK_RETRY_WINDOW_SECONDS", 86400)))


def request_timeout() -> float:
    return float(getattr(settings, "JOURNEY_WEBHOOK_TIMEOUT_SECONDS", 10))


def backoff(attempt: int, *, rng: Callable[[], float] = random.random) -> dt.timedelta:
    """The wait after failed attempt number `attempt` (1 = the first): exponential with full jitter,
    uniform in [0, min(max, base * 2^(attempt-1))], so receivers that come back are not hit by every
    store's retries at once (the AWS architecture blog's "full jitter")."""
    base = float(getattr(settings, "JOURNEY_WEBHOOK_BACKOFF_BASE_SECONDS", 30))
    ceiling = float(getattr(settings, "JOURNEY_WEBHOOK_BACKOFF_MAX_SECONDS", 3600))
    return dt.timedelta(seconds=rng() * min(ceiling, base * 2 ** min(attempt - 1, 30)))


# --- the store's secret ------------------------------------------------------------------


def webhook_secret_rotate(*, tenant: Tenant, by: str) -> str:
    """Make the store's signing secret (or a new one): returns it, the only time it is shown. The previous
    one keeps signing beside it for ROTATION_GRACE. One transaction, with a `store.webhook_secret_rotated`
    event naming who did it."""
    now = clock.now()
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        current = WebhookSecret.objects.for_tenant(tenant).select_for_update().first()
        if current is None:
            WebhookSecret.objects.for_tenant(tenant).create(tenant=tenant, secret_encrypted=crypto.encrypt(secret),
                                                            rotated_at=now)
        else:
            WebhookSecret.objects.for_tenant(tenant).filter(pk=current.pk).update(
                previous_secret_encrypted=current.secret_encrypted, previous_valid_until=now + ROTATION_GRACE,
                secret_encrypted=crypto.encrypt(secret), rotated_at=now)
        event_append(tenant=tenant, type="store.webhook_secret_rotated", occurred_at=now,
                     data={"by": by, "first": current is None})
    return secret


def webhook_secret_status(*, tenant: Tenant | int) -> WebhookSecret | None:
    return WebhookSecret.objects.for_tenant(tenant).first()


def signing_secrets(tenant_id: int, now: dt.datetime) -> list[bytes]:
    """The secrets a call is signed with now: the current one, and the previous one during its grace."""
    row = WebhookSecret.objects.for_tenant(tenant_id).first()
    if row is None:
        return []
    found = [crypto.decrypt(row.secret_encrypted).encode()]
    if row.previous_secret_encrypted and row.previous_valid_until and row.previous_valid_until > now:
        found.append(crypto.decrypt(row.previous_secret_encrypted).encode())
    return found


def signature(body: bytes, keys: list[bytes], timestamp: int) -> str:
    """`t=<timestamp>,v1=<hex>[,v1=<hex>]`: HMAC-SHA256 of b"<timestamp>." + body under each key."""
    signed = str(timestamp).encode() + b"." + body
    return ",".join([f"t={timestamp}", *(f"v1={hmac.new(k, signed, hashlib.sha256).hexdigest()}" for k in keys)])


def signature_valid(body: bytes, header: str, key: bytes, *, now: float, tolerance: float = 300) -> bool:
    """What a receiver does (and the tests): a v1 matches in constant time and t is recent."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k == "t"]
    if len(stamps) != 1 or not re.fullmatch(r"[0-9]{1,12}", stamps[0]) or abs(now - int(stamps[0])) > tolerance:
        return False
    expected = hmac.new(key, stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in parts if k == "v1")


# --- queueing a call ---------------------------------------------------------------------


def idempotency_key(delivery: Delivery) -> str:
    """Stable for the delivery, whatever happens to it: one step, one customer, one pass of the journey."""
    return f"jd_{delivery.tenant_id}_{delivery.pk}"


def webhook_payload(delivery: Delivery, key: str, now: dt.datetime) -> dict[str, Any]:
    """The documented JSON body (README, *Outbound webhook steps*)."""
    customer, order, step = delivery.customer, delivery.enrollment.order, delivery.step
    tenant = customer.tenant
    return {
        "id": key,
        "type": EVENT_TYPE,
        "created_at": now.isoformat(),
        "store": {"slug": tenant.slug, "name": tenant.name},
        "journey": {"id": delivery.journey_id, "name": delivery.journey.name},
        "step": {"id": step.pk, "position": step.position, "name": step.name},
        "customer": {"external_id": customer.external_id, "email": customer.email,
                     "first_name": customer.first_name, "last_name": customer.last_name,
                     "locale": customer.locale, "time_zone": customer.time_zone},
        "order": None if order is None else {"external_id": order.external_id, "number": order.number,
                                             "total": str(order.total), "currency": order.currency},
        "variables": enrollment_variables([delivery.enrollment_id], delivery.tenant_id).get(delivery.enrollment_id, {}),
        "data": (step.config or {}).get("data") or {},
    }


def webhook_call_queue(delivery: Delivery, now: dt.datetime) -> WebhookCall:
    """Write a webhook step's call for a delivery that passed the gate (once per delivery: a second run
    finds the first's row), and queue its first attempt when the caller's transaction commits. The caller
    (journeys.dispatch.delivery_settle) records the delivery as sent and moves the journey on in the
    same transaction."""
    key = idempotency_key(delivery)
    url = str((delivery.step.config or {}).get("url") or "")
    call, _ = WebhookCall.objects.for_tenant(delivery.tenant_id).get_or_create(
        tenant_id=delivery.tenant_id, idempotency_key=key, defaults={
            "delivery": delivery, "journey_id": delivery.journey_id, "step_id": delivery.step_id,
            "customer_id": delivery.customer_id, "url": url, "next_attempt_at": now,
            "give_up_at": now + retry_window(), "created_at": now,
            "body": json.dumps(webhook_payload(delivery, key, now), sort_keys=True, separators=(",", ":"))})
    transaction.on_commit(lambda: _queue_attempt(call.pk, call.tenant_id))
    return call


def _queue_attempt(call_id: int, tenant_id: int) -> None:
    from .tasks import webhook_call  # noqa: PLC0415 - a genuine cycle: the task calls this module

    webhook_call.delay(call_id, tenant_id=tenant_id)


# --- attempting a call -------------------------------------------------------------------


class Refused(Exception):
    """The call must not be made at all (no secret, a private address): failed, not retried."""


def _public_host(url: str) -> None:
    """Refuse a URL whose host resolves to a private, loopback or link-local address (server-side request
    forgery: a store's webhook must not reach our own network), unless JOURNEY_WEBHOOK_ALLOW_PRIVATE_HOSTS."""
    if getattr(settings, "JOURNEY_WEBHOOK_ALLOW_PRIVATE_HOSTS", False):
        return
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc}") from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise Refused(f"{host} resolves to {ip}, a private address; webhooks go to public hosts only")


def post_json(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST to a store's address (a public host), no redirects followed, within the timeout: (status, text)."""
    _public_host(url)
    response = requests.post(url, data=body, headers=headers, timeout=request_timeout(), allow_redirects=False)
    return response.status_code, response.text[:SNIPPET_CHARS]


def _claim(call_id: int, now: dt.datetime) -> WebhookCall | None:
    """Take the call for one attempt: pending, due, not leased by a live worker. A second task for the same
    call (a duplicate message, the sweep's copy) finds it taken and does nothing."""
    lease = now + dt.timedelta(seconds=request_timeout()) + LEASE_MARGIN
    taken = (WebhookCall.all_tenants.filter(pk=call_id, state=WebhookCall.State.PENDING, next_attempt_at__lte=now)
             .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
             .update(lease_until=lease, attempts=F("attempts") + 1))
    return WebhookCall.all_tenants.get(pk=call_id) if taken else None


def webhook_call_attempt(*, call_id: int, post: Callable[[str, bytes, dict[str, str]], tuple[int, str]] | None = None
                         ) -> str:
    """POST a due call once and record the attempt; returns the call's state ("" when it was not ours to try).
    `post(url, body, headers) -> (status, text)` replaces the HTTP request in tests."""
    now = clock.now()
    call = _claim(call_id, now)
    if call is None:
        return ""
    body = call.body.encode()
    started = time.monotonic()
    status: int | None = None
    snippet = error = ""
    transient = False
    try:
        keys = signing_secrets(call.tenant_id, now)
        if not keys:
            raise Refused("the store has no webhook signing secret: make one in Settings → Outbound webhooks")
        headers = {"Content-Type": "application/json", "User-Agent": "lifecycle-webhooks/1",
                   "Idempotency-Key": call.idempotency_key, "X-Lifecycle-Event": EVENT_TYPE,
                   SIGNATURE_HEADER: signature(body, keys, int(now.timestamp()))}
        status, snippet = (post or post_json)(call.url, body, headers)
        if not 200 <= status < 300:
            error = f"HTTP {status}"
            transient = status in TRANSIENT_STATUSES or status >= 500
    except Refused as exc:
        error = str(exc)
    except (requests.RequestException, OSError) as exc:
        error, transient = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", True
    latency_ms = int((time.monotonic() - started) * 1000)
    return _record(call, now, status=status, snippet=snippet, error=error[:300], transient=transient,
                   latency_ms=latency_ms)


def _record(call: WebhookCall, now: dt.datetime, *, status: int | None, snippet: str, error: str, transient: bool,
            latency_ms: int) -> str:
    done = clock.now()
    retry_at = done + backoff(call.attempts)
    if not error:
        state, changes = WebhookCall.State.DELIVERED, {"delivered_at": done, "last_error": ""}
    elif transient and retry_at < call.give_up_at:
        state, changes = WebhookCall.State.PENDING, {"next_attempt_at": retry_at, "last_error": error}
    else:
        state = WebhookCall.State.FAILED
        changes = {"last_error": (f"gave up after {call.attempts} attempts: {error}" if transient else error)[:300]}
    with transaction.atomic():
        WebhookAttempt.objects.for_tenant(call.tenant_id).create(
            tenant_id=call.tenant_id, call=call, number=call.attempts, at=now, status_code=status,
            latency_ms=latency_ms, error=error, response_snippet=snippet)
        WebhookCall.objects.for_tenant(call.tenant_id).filter(pk=call.pk).update(state=state, lease_until=None,
                                                                                  **changes)
        if state == WebhookCall.State.FAILED:
            logger.warning("webhook call %s failed: %s", call.pk, changes["last_error"])
            _note_on_delivery(call, done, changes["last_error"])
    return state


def _note_on_delivery(call: WebhookCall, now: dt.datetime, reason: str) -> None:
    """The explain view reads the delivery's history: a call that failed for good says so there."""
    delivery = Delivery.objects.for_tenant(call.tenant_id).get(pk=call.delivery_id)
    Delivery.objects.for_tenant(call.tenant_id).filter(pk=delivery.pk).update(
        reason=f"webhook failed: {reason}"[:300], updated_at=now,
        history=delivery_history(delivery, "failed", f"webhook failed: {reason}"[:300], now))


def webhook_calls_due(*, now: dt.datetime | None = None, limit: int = SWEEP_BATCH) -> list[tuple[int, int]]:
    """(tenant id, call id) of pending calls whose next attempt is due and that no live worker holds: new
    ones whose task was lost, retries, and calls of a worker that died mid-POST (the task re-checks)."""
    now = now or clock.now()
    return list(WebhookCall.all_tenants.filter(state=WebhookCall.State.PENDING, next_attempt_at__lte=now)
                .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
                .order_by("next_attempt_at").values_list("tenant_id", "pk")[:limit])
