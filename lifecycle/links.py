"""Signed, purpose-salted links for emails: unsubscribe, surveys, loyalty, referrals.

A token names its tenant, customer and (usually) delivery. The salt includes the purpose,
so a survey token is worthless on the unsubscribe URL. A tampered token reads as None
(the page answers 404); an expired one raises `LinkExpired` (a friendly page).
"""

from typing import Any

from django.conf import settings
from django.core import signing

# Unsubscribe links must keep working for at least 30 days after sending (CAN-SPAM);
# we keep them far longer, so an old email never leaves someone unable to leave.
MAX_AGE_DAYS = {"unsubscribe": 365, "survey": 90, "loyalty": 180, "referral": 365}


class LinkExpired(Exception):
    def __init__(self, payload: dict[str, Any] | None = None):
        super().__init__("link expired")
        self.payload = payload


def make_token(purpose: str, *, tenant_id: int, customer_id: int, delivery_id: int | None = None,
               **extra: Any) -> str:
    if purpose not in MAX_AGE_DAYS:
        raise ValueError(f"unknown link purpose {purpose!r}")
    payload = {"t": tenant_id, "c": customer_id, **({"d": delivery_id} if delivery_id else {}), **extra}
    return signing.dumps(payload, salt=f"lifecycle.link.{purpose}", compress=True)


def read_token(purpose: str, token: str) -> dict[str, Any] | None:
    salt = f"lifecycle.link.{purpose}"
    try:
        return signing.loads(token, salt=salt, max_age=MAX_AGE_DAYS[purpose] * 86400)
    except signing.SignatureExpired as exc:
        raise LinkExpired() from exc
    except signing.BadSignature:
        return None


def absolute(path: str) -> str:
    return settings.PUBLIC_BASE_URL + path
