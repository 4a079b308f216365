"""Hearing back from the ESP: anymail tracking events update the Delivery, the Customer and the timeline.

`esp_event_record` is the one write behind the anymail `tracking` signal (journeys/tracking.py).
It runs inside the webhook request (which journeys/tracking.py has already authenticated), so it
is short: find the delivery (`_find_delivery`: our HMAC'd Message-ID, the ESP's message id, or
metadata carrying our token; never tenant/delivery ids alone), lock that row, write, return. It is idempotent: every event it
records lands on the timeline with a dedupe key built from (esp, event type, message id,
recipient, event time or the ESP's event id), and the unique (tenant, dedupe_key) constraint
makes a replayed webhook a no-op.

What it never does is answer an error for an event it cannot use: an unknown message id,
unsigned or forged metadata, another tenant's metadata, an event type we do not track — those are logged and ignored,
so the ESP gets its 200 and stops retrying. A database error is the exception: it
propagates, anymail answers 5xx and the ESP retries later.
"""

import dataclasses
import datetime as dt
import hashlib
import logging
import re
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.crypto import constant_time_compare

from lifecycle import clock
from lifecycle.customers import customer_suppress, customer_unsubscribe
from lifecycle.models import Customer, Event
from lifecycle.tenancy import system_scope, tenant_scope
from lifecycle.timeline import event_append

from .models import Delivery
from .rendering import delivery_token

logger = logging.getLogger(__name__)

# anymail's normalized event type → (timeline event type, Delivery timestamp set once).
TRACKED: dict[str, tuple[str, str | None]] = {
    "delivered": ("email.delivered", "delivered_at"),
    "opened": ("email.opened", "opened_at"),
    "clicked": ("email.clicked", "clicked_at"),
    "bounced": ("email.bounced", "bounced_at"),
    "complained": ("email.complained", "complained_at"),
    "unsubscribed": ("email.unsubscribed", None),
    # Not engagement, but a reader of the timeline wants to see them, and the timeline row's
    # dedupe key is what makes every recorded event idempotent.
    "rejected": ("email.rejected", None),
    "failed": ("email.failed", None),
    "deferred": ("email.deferred", None),
}
# A bounce that says "this address does not exist" (promise 19); a full mailbox does not.
HARD_BOUNCE_REASONS = {"bounced", "invalid"}
# Postmark's SoftBounce is normalized to bounced/bounced, but it is temporary by definition.
SOFT_BOUNCE_TYPES = {"SoftBounce"}
# The ESP refused to send: why → our suppression reason (shown as "address suppressed (…)").
REJECT_SUPPRESSION = {"bounced": "bounce", "invalid": "invalid address", "spam": "complaint",
                      "unsubscribed": "unsubscribed"}
# Our own deterministic Message-ID (journeys.rendering.message_id_for) names tenant and delivery, with
# an HMAC over both; some ESPs report it without its angle brackets. One without the HMAC (sent
# before it was added) matches too, and then fails verification: it was guessable.
OWN_MESSAGE_ID = re.compile(r"^<?journey\.(?P<tenant>\d{1,18})\.(?P<delivery>\d{1,18})(?:\.(?P<token>[0-9a-f]+))?@[^<>\s]+>?$")


@dataclasses.dataclass(frozen=True)
class Heard:
    """An anymail tracking event, reduced to plain, validated values."""

    esp: str
    event_type: str
    message_id: str
    recipient: str
    metadata: dict[str, Any]
    occurred_at: dt.datetime | None
    event_id: str
    reject_reason: str
    description: str
    click_url: str
    esp_type: str  # the ESP's own sub-type where it matters (Postmark's bounce "Type")

    @classmethod
    def of(cls, event: Any, esp_name: str) -> "Heard":
        metadata = getattr(event, "metadata", None)
        timestamp = getattr(event, "timestamp", None)
        raw = getattr(event, "esp_event", None)
        return cls(
            esp=str(esp_name or "unknown"),
            event_type=str(getattr(event, "event_type", "") or ""),
            message_id=_text(getattr(event, "message_id", None)),
            recipient=_text(getattr(event, "recipient", None)).lower(),
            metadata=metadata if isinstance(metadata, dict) else {},
            occurred_at=timestamp if isinstance(timestamp, dt.datetime) and timestamp.tzinfo else None,
            event_id=_text(getattr(event, "event_id", None)),
            reject_reason=_text(getattr(event, "reject_reason", None)),
            description=_text(getattr(event, "description", None))[:300],
            click_url=_text(getattr(event, "click_url", None))[:2000],
            esp_type=_text(raw.get("Type")) if isinstance(raw, dict) else "",
        )

    @property
    def dedupe_key(self) -> str:
        # The event's own time first: Mailgun's event_id is the signature token of one POST,
        # not of the event, so a retried POST may carry a new one; the event time does not change.
        moment = self.occurred_at.astimezone(dt.UTC).isoformat() if self.occurred_at else self.event_id
        raw = "\n".join([self.esp.lower(), self.event_type, self.message_id, self.recipient, moment])
        return f"esp:{hashlib.sha256(raw.encode()).hexdigest()}"


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _meta_int(metadata: dict[str, Any], key: str) -> int | None:
    # Postmark and Mailgun echo metadata values back as strings.
    try:
        return int(str(metadata.get(key, "")).strip())
    except ValueError:
        return None


def _token_valid(tenant_id: int, delivery_id: int, token: str) -> bool:
    """Our HMAC over tenant and delivery (journeys.rendering.delivery_token), under SECRET_KEY or a fallback."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(constant_time_compare(token, delivery_token(tenant_id, delivery_id, secret=key)) for key in keys)


def _signed_metadata(metadata: dict[str, Any]) -> tuple[tuple[int, int] | None, str]:
    """(tenant id, delivery id) from metadata that carries our token over both; else None and why not."""
    token = _text(metadata.get("delivery_token"))
    tenant_id, delivery_id = _meta_int(metadata, "tenant_id"), _meta_int(metadata, "delivery_id")
    if not token:
        return None, "metadata carries no delivery token"
    if tenant_id is None or delivery_id is None or not _token_valid(tenant_id, delivery_id, token):
        return None, "metadata's delivery token does not verify"
    return (tenant_id, delivery_id), ""


def _find_delivery(heard: Heard) -> tuple[Delivery | None, str]:
    """The delivery an event is about, or None and why not. Never through guessable ids alone:

    - our own Message-ID names tenant and delivery with an HMAC over both, which must verify;
    - else the ESP's message id (random, handed to us by the ESP when it accepted the message);
    - else metadata, only when it carries our token over tenant and delivery.
    Signed metadata must agree with what the message id found; unsigned metadata naming a tenant
    may only narrow, never widen, the search. A token that is present and wrong voids the event.
    """
    signed, unsigned_why = _signed_metadata(heard.metadata)
    if heard.metadata.get("delivery_token") not in (None, "") and signed is None:
        return None, unsigned_why
    meta_tenant = signed[0] if signed else _meta_int(heard.metadata, "tenant_id")
    if heard.metadata.get("tenant_id") not in (None, "") and meta_tenant is None:
        return None, "metadata tenant_id is not a number"

    own = OWN_MESSAGE_ID.match(heard.message_id)
    if own:
        tenant_id, delivery_id = int(own["tenant"]), int(own["delivery"])
        if not _token_valid(tenant_id, delivery_id, own["token"] or ""):
            return None, "our Message-ID's token does not verify"
        if signed and signed != (tenant_id, delivery_id):
            return None, "metadata names another delivery than the Message-ID"
        message_id = f"<{heard.message_id.strip('<>')}>"
        found = Delivery.objects.for_tenant(tenant_id).filter(pk=delivery_id, message_id=message_id).first()
        return (found, "") if found else (None, "our Message-ID names no delivery we sent")

    if heard.message_id:
        candidates = list(Delivery.all_tenants.filter(esp_message_id=heard.message_id).order_by("pk")[:10])
        if candidates:
            if meta_tenant is not None:
                candidates = [d for d in candidates if d.tenant_id == meta_tenant]
                if not candidates:
                    return None, "metadata tenant_id does not match the delivery's tenant"
            if signed:
                candidates = [d for d in candidates if d.pk == signed[1]]
                if not candidates:
                    return None, "metadata names another delivery than the message id"
            if len(candidates) == 1:
                return candidates[0], ""
            return None, f"message id matches {len(candidates)} deliveries"
    if signed:
        found = Delivery.objects.for_tenant(signed[0]).filter(pk=signed[1]).first()
        return (found, "") if found else (None, "metadata names no delivery of that tenant")
    if _meta_int(heard.metadata, "delivery_id") is not None:
        return None, f"unknown message id, and {unsigned_why}"
    return None, "unknown message id"


def _history_entry(delivery: Delivery, heard: Heard, note: str, now: dt.datetime) -> dict[str, str]:
    reason = f"{heard.esp}: {heard.event_type}" + (f" ({heard.reject_reason})" if heard.reject_reason else "")
    entry = {"at": now.isoformat(), "state": delivery.state, "reason": reason + (f"; {note}" if note else ""),
             "esp_event": heard.event_type}
    if heard.occurred_at:
        entry["occurred_at"] = heard.occurred_at.astimezone(dt.UTC).isoformat()
    return entry


def _customer_effects(customer: Customer, heard: Heard) -> str:
    """Suppress or unsubscribe as the event demands. Returns a note for the history (may be empty)."""
    detail = f"{heard.esp} {heard.event_type}"
    same_address = not heard.recipient or heard.recipient == (customer.email or "").lower()
    if heard.event_type == "bounced":
        hard = heard.reject_reason in HARD_BOUNCE_REASONS and heard.esp_type not in SOFT_BOUNCE_TYPES
        if not hard:
            return "soft bounce: address kept"
        if not same_address:
            # The customer has changed address since: the dead one is not theirs any more.
            return "hard bounce of an address the customer no longer has: not suppressed"
        customer_suppress(customer=customer, reason="bounce")
        return "hard bounce: address suppressed"
    if heard.event_type == "complained":
        # A complaint is about this store's marketing: it ends that, at once, but order
        # updates (transactional) still reach the customer. Hard bounces suppress everything.
        customer_unsubscribe(customer=customer, detail=detail)
        return "complaint: unsubscribed from marketing"
    if heard.event_type == "unsubscribed":
        customer_unsubscribe(customer=customer, detail=detail)
        return "unsubscribed from marketing"
    if heard.event_type == "rejected":
        reason = REJECT_SUPPRESSION.get(heard.reject_reason)
        if reason is None:
            return ""
        if reason in ("bounce", "invalid address") and not same_address:
            return "rejected an address the customer no longer has: not suppressed"
        customer_suppress(customer=customer, reason=reason)
        if reason in ("complaint", "unsubscribed"):
            customer_unsubscribe(customer=customer, detail=detail)
        return f"the ESP refused the address: suppressed ({reason})"
    return ""


def esp_event_record(*, esp_name: str, event: Any) -> str:
    """Record one anymail tracking event. Returns what happened: "recorded", "duplicate" or "ignored: …".

    Tenant: the delivery's (found by the ESP's message id; metadata that names another
    tenant is ignored). Idempotent on the event's dedupe key. Locks the delivery row, so two
    copies of one webhook arriving together are recorded once. Timestamps on the delivery
    are set the first time only; its state never changes here (a delivery is `sent` before
    the ESP can report on it, and stays so).
    """
    heard = Heard.of(event, esp_name)
    if heard.event_type not in TRACKED:
        # queued, sent, subscribed, autoresponded… are routine; an unknown type is worth a look.
        level = logging.DEBUG if heard.event_type and heard.event_type != "unknown" else logging.INFO
        logger.log(level, "ignored %s %r event for %r: not tracked", heard.esp, heard.event_type, heard.message_id)
        return f"ignored: {heard.event_type or 'no'} events are not tracked"
    # The ESP's message id may be any store's: finding the delivery spans tenants; the rest is its tenant's.
    with system_scope():
        found, why = _find_delivery(heard)
    if found is None:
        logger.info("ignored %s %s event for message id %r: %s", heard.esp, heard.event_type, heard.message_id, why)
        return f"ignored: {why}"
    with tenant_scope(found.tenant_id):
        return _record(found, heard)


def _record(found: Delivery, heard: Heard) -> str:
    timeline_type, timestamp_field = TRACKED[heard.event_type]
    key = heard.dedupe_key
    try:
        with transaction.atomic():
            delivery = (Delivery.objects.for_tenant(found.tenant_id).select_for_update(of=("self",))
                        .select_related("tenant", "customer__tenant", "enrollment__order").get(pk=found.pk))
            if Event.objects.for_tenant(delivery.tenant_id).filter(dedupe_key=key).exists():
                return "duplicate"
            now = clock.now()
            occurred_at = heard.occurred_at or now
            note = _customer_effects(delivery.customer, heard)
            updates: dict[str, Any] = {
                "history": [*delivery.history, _history_entry(delivery, heard, note, now)],
                "updated_at": now,
            }
            if timestamp_field and getattr(delivery, timestamp_field) is None:
                updates[timestamp_field] = occurred_at
            if not delivery.esp_message_id and heard.message_id:
                # Found through metadata: remember the id, so the next event is one lookup.
                updates["esp_message_id"] = heard.message_id
            Delivery.objects.for_tenant(delivery.tenant_id).filter(pk=delivery.pk).update(**updates)
            data = {"esp": heard.esp, "delivery_id": delivery.pk, "journey_id": delivery.journey_id,
                    "step_id": delivery.step_id, "message_id": heard.message_id}
            if heard.reject_reason:
                data["reject_reason"] = heard.reject_reason
            if heard.description and not delivery.customer.erased_at:
                data["description"] = heard.description
            if heard.click_url:
                data["url"] = heard.click_url
            if note:
                data["effect"] = note
            event_append(tenant=delivery.tenant, type=timeline_type, occurred_at=occurred_at,
                         customer=delivery.customer, order=delivery.enrollment.order, data=data, dedupe_key=key)
    except IntegrityError:
        # The row lock serializes copies of one event, so this is a backstop: the timeline's
        # unique (tenant, dedupe_key) says another writer recorded it first.
        if Event.all_tenants.filter(tenant_id=found.tenant_id, dedupe_key=key).exists():
            return "duplicate"
        raise
    return "recorded"
