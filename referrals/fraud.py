"""Fraud signals. Pure helpers: normalizing, hashing, recognizing bots.

Orders reach us without a shipping address, a browser IP or a user agent (OrderIn does
not carry them), so device and IP checks compare the clicks on a code: the advocate's
own visits (their signed link) against the friend's click before the order.
"""

import hashlib
import hmac
import re

from django.conf import settings

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})

# Link checkers, crawlers, unfurlers and scanners that fetch shared links without a person.
BOT_USER_AGENT = re.compile(
    r"bot|crawl|spider|slurp|preview|facebookexternalhit|whatsapp|telegram|skype|discord|slack|"
    r"linkedin|embedly|pinterest|curl|wget|python|httpclient|java/|go-http|okhttp|headless|phantom|"
    r"lighthouse|scanner|proofpoint|mimecast|barracuda|safelinks|urldefense|monitor|check",
    re.IGNORECASE,
)


def normalize_email(email: str) -> str:
    """One person, one address: lower-case, no +tag, and Gmail ignores dots (and googlemail is gmail)."""
    email = (email or "").strip().lower()
    local, _, domain = email.partition("@")
    if not domain:
        return email
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 keyed with SECRET_KEY: equal inputs compare equal, nobody can reverse it."""
    return hmac.new(settings.SECRET_KEY.encode(), f"referrals:{value}".encode(), hashlib.sha256).hexdigest()


def ip_hash(ip: str) -> str:
    return keyed_hash(f"ip:{ip}")


def device_hash(ip: str, user_agent: str) -> str:
    return keyed_hash(f"device:{ip}|{user_agent}")


def is_bot(user_agent: str) -> bool:
    return not user_agent.strip() or bool(BOT_USER_AGENT.search(user_agent))
