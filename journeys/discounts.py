"""The discount-code step: a unique code for the customer, kept for the emails after it ({{ discount_code }}).

From a loyalty reward's pool of uploaded codes (loyalty.redemptions.reward_code_issue: no points spent, one
code per delivery, never the same code twice), or from the store's webhook: a signed POST (the same
signature and idempotency key as a webhook step, journeys/webhooks.py) answered with {"code": "…"}.
An empty pool or a refusal skips the step with its reason (the explain view shows it) and the journey
goes on; a webhook that is down is retried with the delivery's backoff."""

import datetime as dt
import json

import requests

from loyalty.redemptions import reward_code_issue

from .models import Delivery, EnrollmentVariable
from .step_refs import pool_reward
from .webhooks import (
    SIGNATURE_HEADER,
    TRANSIENT_STATUSES,
    Refused,
    backoff,
    idempotency_key,
    post_json,
    signature,
    signing_secrets,
    webhook_payload,
)

VARIABLE = "discount_code"
# Tries of the store's code webhook before the step gives up (with the webhook backoff between them).
MAX_CODE_ATTEMPTS = 6
EVENT_TYPE = "journey.discount_code_requested"


class Transient(Exception):
    """The store's webhook may answer later."""


def _from_pool(delivery: Delivery) -> tuple[str | None, str]:
    name = str((delivery.step.config or {}).get("pool") or "")
    reward = pool_reward(delivery.tenant_id, name)
    if reward is None:
        return None, f"discount code: {name!r} is not a loyalty reward with a pool of codes"
    code = reward_code_issue(tenant=delivery.tenant_id, reward=reward, source=f"journey-delivery:{delivery.pk}")
    if code is None:
        return None, f"discount code: the pool of {name!r} is empty; upload more codes to its reward"
    return code, ""


def _from_webhook(delivery: Delivery, now: dt.datetime) -> tuple[str | None, str]:
    url = str((delivery.step.config or {}).get("url") or "")
    keys = signing_secrets(delivery.tenant_id, now)
    if not keys:
        return None, "discount code: the store has no webhook signing secret (Settings → Outbound webhooks)"
    key = idempotency_key(delivery)
    payload = {**webhook_payload(delivery, key, now), "type": EVENT_TYPE}
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key, "X-Lifecycle-Event": EVENT_TYPE,
               SIGNATURE_HEADER: signature(body, keys, int(now.timestamp()))}
    try:
        status, text = post_json(url, body, headers)
    except Refused as exc:
        return None, f"discount code: {exc}"
    except (requests.RequestException, OSError) as exc:
        raise Transient(f"{type(exc).__name__}: {exc}"[:200]) from exc
    if status in TRANSIENT_STATUSES or status >= 500:
        raise Transient(f"HTTP {status}")
    if not 200 <= status < 300:
        return None, f"discount code: the store's webhook refused it (HTTP {status})"
    try:
        code = json.loads(text).get("code")
    except (ValueError, AttributeError):
        code = None
    if not isinstance(code, str) or not code.strip() or len(code) > 200:
        return None, 'discount code: the store\'s webhook answered without a code; it must answer {"code": "…"}'
    return code.strip(), ""


def discount_code_issue(delivery: Delivery, now: dt.datetime) -> tuple[str, str, dt.datetime | None, str]:
    """Get the customer's code for a discount step that passed the gate. Returns (state, reason, retry_at,
    code): "sent" with the code (the caller keeps it with `discount_code_keep`, in the transaction that
    records the delivery), "skipped" with why, or "pending" with when to ask the store's webhook again.
    Idempotent per delivery: the pool's source and the webhook's idempotency key are the delivery's."""
    webhook = (delivery.step.config or {}).get("source") == "webhook"
    try:
        code, reason = _from_webhook(delivery, now) if webhook else _from_pool(delivery)
    except Transient as exc:
        if delivery.attempts < MAX_CODE_ATTEMPTS:
            return (Delivery.State.PENDING, f"retrying: discount code webhook: {exc}",
                    now + backoff(delivery.attempts), "")
        return Delivery.State.SKIPPED, f"discount code: the store's webhook did not answer ({exc})", None, ""
    if code is None:
        return Delivery.State.SKIPPED, reason, None, ""
    return Delivery.State.SENT, f"discount code {code} ({'store webhook' if webhook else 'pool'})", None, code


def discount_code_keep(delivery: Delivery, code: str, now: dt.datetime) -> None:
    """Keep the code for the enrollment's later emails (once per delivery)."""
    EnrollmentVariable.objects.for_tenant(delivery.tenant_id).get_or_create(
        tenant_id=delivery.tenant_id, delivery=delivery, name=VARIABLE,
        defaults={"enrollment_id": delivery.enrollment_id, "value": code, "created_at": now})
