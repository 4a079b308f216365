"""Handing a reward to whoever issues it: loyalty (points) or the store (discount code, store
credit, through the program's reward webhook). No database writes here: services.reward_deliver
records the outcome."""

import json
import urllib.error
import urllib.request

from lifecycle.errors import ServiceError
from lifecycle.money import money_str
from loyalty.services import points_award as loyalty_points_award

from .models import Reward

# Every outbound call has a timeout: a store that hangs must not hold a worker.
WEBHOOK_TIMEOUT_SECONDS = 10


class Transient(Exception):
    """Worth trying again later: network trouble, a timeout, 5xx or 429."""


class Terminal(Exception):
    """Trying again will not help: a 4xx, no webhook URL, points loyalty refuses."""


def points_award(reward: Reward) -> None:
    """Points through loyalty's service. `source` names the reward, so loyalty can refuse a duplicate."""
    try:
        loyalty_points_award(tenant=reward.tenant, customer=reward.customer, points=int(reward.amount), kind="earn",
              source=f"referral-reward:{reward.pk}", reason=f"referral {reward.referral.code.code} ({reward.side})")
    except ServiceError as exc:
        raise Terminal(f"loyalty: {exc.message}") from exc


def store_payload(reward: Reward) -> dict:
    customer = reward.customer
    return {
        "type": "referral.reward", "reward_id": reward.pk, "referral_id": reward.referral_id, "side": reward.side,
        "kind": reward.kind, "amount": money_str(reward.amount, reward.currency), "currency": reward.currency,
        "code": reward.code,
        "customer": {"external_id": customer.external_id, "email": customer.email},
    }


def post_to_store(reward: Reward, url: str) -> None:
    """POST the reward as JSON. The Idempotency-Key lets the store drop a repeat (a worker that
    died after the store accepted, before we recorded it)."""
    if not url.startswith(("https://", "http://")):
        raise Terminal("the referral program has no http(s) reward_webhook_url")
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        url, data=json.dumps(store_payload(reward)).encode(), method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": f"referral-reward-{reward.pk}",
                 "User-Agent": "lifecycle-referrals/1"},
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) only
            response.read(1024)
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise Transient(f"HTTP {exc.code}") from exc
        raise Terminal(f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise Transient(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from exc
