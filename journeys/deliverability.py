"""Deliverability guardrails: a store whose mail draws complaints or bounces is warned, then paused.

Mailbox providers judge a sending domain by its complaint and bounce rates; one careless store
(a bought list, a stale import) can get the shared sending infrastructure blocked for every
store. So a beat task (`journeys.check_deliverability`, every 15 minutes) computes each
store's rates over the last 24 h:

- sent: journey emails handed to the ESP (the Delivery ledger: `sent_at` in the window and a
  Message-ID, so branches and points awards, which send nothing, do not count);
- bounces: hard `email.bounced` tracking events (a soft bounce, a full mailbox, is not the
  store's fault), one per delivery;
- complaints: `email.complained` tracking events, one per delivery.

Over ALERT_* the store's owner is warned (`Tenant.deliverability_alert`, an Event, a log line);
over PAUSE_* every marketing email of the store is held by the send gate (deferred with the
reason `tenant_paused`, never dropped) until someone resumes it (`marketing_resume`, or
`manage.py resume_marketing <store>`). Transactional email keeps going. After a resume the
rates count only what was sent since, so the same old bounces do not pause the store again.
"""

import dataclasses
import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.db import transaction

from journeys.models import Delivery, Journey
from lifecycle import clock
from lifecycle.models import Event, Tenant
from lifecycle.timeline import event_append

logger = logging.getLogger(__name__)

WINDOW = dt.timedelta(hours=24)
# Gmail's and Yahoo's bulk-sender rules: keep spam complaints under 0.1%, never reach 0.3%.
ALERT_COMPLAINT_RATE = Decimal("0.001")
PAUSE_COMPLAINT_RATE = Decimal("0.003")
# ESPs review accounts above ~5% bounces and suspend them around 10%.
ALERT_BOUNCE_RATE = Decimal("0.05")
PAUSE_BOUNCE_RATE = Decimal("0.10")
# Below these volumes a rate says nothing about a list: 1 bounce of 3 emails is 33%. At 100 emails
# it takes 6 hard bounces to warn and 11 to pause. Complaints need more: at 1,000 emails one
# complaint is 0.1%, which does not warn (the rule is *over* 0.1%); two do, four pause.
MIN_SENT_FOR_BOUNCE_RATE = 100
MIN_SENT_FOR_COMPLAINT_RATE = 1_000
# Stores checked per transaction-free batch of the beat task (one short transaction per store).
CHECK_BATCH = 200
SOFT_BOUNCE_EFFECT = "soft bounce"


@dataclasses.dataclass(frozen=True)
class Rates:
    since: dt.datetime
    sent: int
    bounces: int
    complaints: int

    @property
    def bounce_rate(self) -> Decimal | None:
        return Decimal(self.bounces) / self.sent if self.sent >= MIN_SENT_FOR_BOUNCE_RATE else None

    @property
    def complaint_rate(self) -> Decimal | None:
        return Decimal(self.complaints) / self.sent if self.sent >= MIN_SENT_FOR_COMPLAINT_RATE else None

    def as_data(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "sent": self.sent, "bounces": self.bounces,
                "complaints": self.complaints,
                "bounce_rate": _percent(self.bounce_rate), "complaint_rate": _percent(self.complaint_rate)}


def _percent(rate: Decimal | None) -> str | None:
    return None if rate is None else f"{rate * 100:.2f}%"


def _sent_by_journey(tenant: Tenant) -> list:
    """The store's deliveries, one queryset per journey: each journey's sends of a window are then one
    range of delivery_journey_sent_idx (tenant, journey, sent_at), instead of a read of every delivery
    the store ever had (there is no index on sent_at alone: each is one more write per claimed row)."""
    # The Delivery ledger belongs to journeys, which the settings wire in; imported here, at call
    # time, so that lifecycle's modules import no feature app.

    deliveries = Delivery.objects.for_tenant(tenant)
    return [deliveries.filter(journey_id=pk) for pk in Journey.objects.for_tenant(tenant).values_list("pk", flat=True)]


def deliverability_rates(*, tenant: Tenant, now: dt.datetime | None = None) -> Rates:
    """The store's sent / bounced / complained counts since max(24 h ago, its last resume)."""
    now = now or clock.now()
    since = now - WINDOW
    if tenant.marketing_resumed_at and tenant.marketing_resumed_at > since:
        since = tenant.marketing_resumed_at
    sent = sum(sends.filter(sent_at__gte=since, sent_at__lte=now).exclude(message_id="").count()
               for sends in _sent_by_journey(tenant))
    events = Event.objects.for_tenant(tenant).filter(occurred_at__gte=since, occurred_at__lte=now, backfill=False)
    bounces = (events.filter(type="email.bounced").exclude(data__effect__startswith=SOFT_BOUNCE_EFFECT)
               .values("data__delivery_id").distinct().count())
    complaints = events.filter(type="email.complained").values("data__delivery_id").distinct().count()
    return Rates(since=since, sent=sent, bounces=bounces, complaints=complaints)


def _verdict(rates: Rates) -> tuple[str, str]:
    """("ok" | "alert" | "pause", why)."""
    bounce, complaint = rates.bounce_rate, rates.complaint_rate
    found = []
    level = "ok"
    if complaint is not None and complaint > ALERT_COMPLAINT_RATE:
        over_pause = complaint > PAUSE_COMPLAINT_RATE
        level = "pause" if over_pause else "alert"
        found.append(f"spam complaints at {_percent(complaint)} of {rates.sent} emails "
                     f"({'pause' if over_pause else 'warning'} above {_percent(PAUSE_COMPLAINT_RATE if over_pause else ALERT_COMPLAINT_RATE)})")
    if bounce is not None and bounce > ALERT_BOUNCE_RATE:
        over_pause = bounce > PAUSE_BOUNCE_RATE
        level = "pause" if over_pause or level == "pause" else "alert"
        found.append(f"hard bounces at {_percent(bounce)} of {rates.sent} emails "
                     f"({'pause' if over_pause else 'warning'} above {_percent(PAUSE_BOUNCE_RATE if over_pause else ALERT_BOUNCE_RATE)})")
    return level, "; ".join(found)


def deliverability_check(*, tenant: Tenant | int, now: dt.datetime | None = None) -> str:
    """Judge one store's last 24 h and raise or clear its alert, pausing its marketing when it is bad.

    Returns "ok", "alert", "paused" (paused by this check) or "still paused". Locks the tenant
    row, so two beat runs at once decide once. A pause is never lifted here: only
    `marketing_resume` does that, when a person has looked.
    """
    now = now or clock.now()
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant_id)
        rates = deliverability_rates(tenant=locked, now=now)
        level, why = _verdict(rates)
        data = rates.as_data()
        if level == "ok":
            if locked.marketing_paused_at is not None:
                # A paused store sends no marketing, so its rates fall by themselves: that is no recovery.
                return "still paused"
            if locked.deliverability_alert_at is not None:
                locked.deliverability_alert, locked.deliverability_alert_at = "", None
                locked.save(update_fields=["deliverability_alert", "deliverability_alert_at"])
                event_append(tenant=locked, type="deliverability.recovered", occurred_at=now, data=data)
                logger.info("deliverability: %s (tenant %s) is back under the thresholds", locked.slug, locked.pk)
            return "ok"
        fields = []
        if locked.deliverability_alert != why:
            locked.deliverability_alert = why
            fields.append("deliverability_alert")
        if locked.deliverability_alert_at is None:
            locked.deliverability_alert_at = now
            fields.append("deliverability_alert_at")
            event_append(tenant=locked, type="deliverability.alert", occurred_at=now, data={**data, "reason": why})
            logger.warning("deliverability alert: %s (tenant %s): %s", locked.slug, locked.pk, why)
        outcome = "alert"
        if level == "pause":
            if locked.marketing_paused_at is None:
                locked.marketing_paused_at, locked.marketing_paused_reason = now, why
                fields += ["marketing_paused_at", "marketing_paused_reason"]
                event_append(tenant=locked, type="deliverability.paused", occurred_at=now,
                             data={**data, "reason": why})
                logger.warning("deliverability: paused marketing email of %s (tenant %s): %s", locked.slug,
                               locked.pk, why)
                outcome = "paused"
            else:
                outcome = "still paused"
        elif locked.marketing_paused_at is not None:
            outcome = "still paused"
        if fields:
            locked.save(update_fields=fields)
    return outcome


def deliverability_check_all(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Beat: check every store, one short transaction each, walking a pk cursor. Counts by outcome."""
    now = now or clock.now()
    counts: dict[str, int] = {}
    cursor = 0
    while True:
        ids = list(Tenant.objects.filter(pk__gt=cursor).order_by("pk").values_list("pk", flat=True)[:CHECK_BATCH])
        for tenant_id in ids:
            outcome = deliverability_check(tenant=tenant_id, now=now)
            counts[outcome] = counts.get(outcome, 0) + 1
        if len(ids) < CHECK_BATCH:
            return counts
        cursor = ids[-1]


def marketing_resume(*, tenant: Tenant, by: str = "") -> bool:
    """Lift a deliverability pause: marketing email is sent again (held emails go out at their next
    due time, within the hour), and the rates count afresh from now. Idempotent: False when the
    store was not paused."""
    now = clock.now()
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if locked.marketing_paused_at is None:
            return False
        data = {"paused_at": locked.marketing_paused_at.isoformat(), "reason": locked.marketing_paused_reason,
                "by": by}
        locked.marketing_paused_at, locked.marketing_paused_reason = None, ""
        locked.deliverability_alert, locked.deliverability_alert_at = "", None
        locked.marketing_resumed_at = now
        locked.save(update_fields=["marketing_paused_at", "marketing_paused_reason", "deliverability_alert",
                                   "deliverability_alert_at", "marketing_resumed_at"])
        event_append(tenant=locked, type="deliverability.resumed", occurred_at=now, data=data)
    logger.warning("deliverability: marketing email of %s (tenant %s) resumed%s", locked.slug, locked.pk,
                   f" by {by}" if by else "")
    tenant.refresh_from_db(fields=["marketing_paused_at", "marketing_paused_reason", "deliverability_alert",
                                   "deliverability_alert_at", "marketing_resumed_at"])
    return True


def deliverability_status(tenant: Tenant) -> dict[str, Any]:
    """What the store's owner is shown: "ok", "alert" or "paused", why, and since when (a selector)."""
    state = "paused" if tenant.marketing_paused_at else "alert" if tenant.deliverability_alert_at else "ok"
    return {
        "state": state,
        "reason": tenant.marketing_paused_reason if state == "paused" else tenant.deliverability_alert,
        "alert_at": tenant.deliverability_alert_at,
        "paused_at": tenant.marketing_paused_at,
    }
