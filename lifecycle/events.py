"""Events are the outbox: features react to them from here, in order, each event once.

Which apps react to an event, and in what order, is declared once per event type in
lifecycle/event_types.py; each app registers its reaction with `reaction()` when Django starts it
(its AppConfig.ready). The reactions are called explicitly one after another — no Django signals. A beat task drains unprocessed events every few
seconds with `FOR UPDATE SKIP LOCKED`, so several workers share the work and a lost broker
message loses nothing: the row is still unprocessed and the next sweep takes it.
Handlers must be idempotent (keyed by the event's id): an event whose transaction failed
is handled again.

The sweep works across tenants (`system_scope`, for row-level security); each event's handlers
run in its own tenant's scope, so a handler sees no other store's rows.

Sweeps share the work by customer, not by batch: on PostgreSQL each sweep takes one of
`EVENT_SWEEP_SLOTS` slots (a transaction-scoped advisory lock) and only the events whose
customer id falls in it. One customer's events are so handled in order by one sweep at a time,
and two sweeps never wait on each other's locks for the same customer (the journeys' enrollment
lock, the loyalty account's row), which with overlapping batches ended in deadlocks. A sweep that
finds every slot taken returns at once, so beat's ticks don't pile sweeps up on the worker pool.
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Mod

from . import clock
from .event_types import REACTION_ORDER, event_type
from .models import Event
from .tenancy import system_scope, tenant_scope

logger = logging.getLogger(__name__)

# Events per sweep transaction: enough to keep up with bursts, short enough to hold locks briefly.
BATCH_SIZE = 200
# An event that keeps failing is set aside (processed, with attempts recorded) instead of
# blocking the sweep forever; the log says which and why.
MAX_ATTEMPTS = 5


Reaction = Callable[[Event], None]
_reactions: dict[str, Reaction] = {}


def reaction(app_label: str) -> Callable[[Reaction], Reaction]:
    """Register `app_label`'s one reaction to events (a decorator, applied when the app's handlers
    module is imported by its AppConfig.ready). The event types say when it is called."""
    if app_label not in REACTION_ORDER:
        raise ValueError(f"{app_label} is not in lifecycle.event_types.REACTION_ORDER")

    def register(handler: Reaction) -> Reaction:
        _reactions[app_label] = handler
        return handler

    return register


def reactions_to(event_type_name: str) -> list[Reaction]:
    """The reactions an event of this type gets, in the declared order."""
    return [_reactions[app] for app in event_type(event_type_name).reactors if app in _reactions]


# Advisory-lock class of the sweep slots (the two-int key space, apart from lifecycle.services' locks).
SWEEP_LOCK_CLASS = 0x5EE9


def sweep_slots() -> int:
    """How many sweeps may run at once (1 on SQLite, which has one writer anyway)."""
    return max(1, int(settings.EVENT_SWEEP_SLOTS)) if connection.vendor == "postgresql" else 1


def _take_slot(slot: int) -> bool:
    """Hold sweep slot `slot` until the transaction ends; False if another sweep holds it."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [SWEEP_LOCK_CLASS, slot])
        return cursor.fetchone()[0]


def events_process_pending(*, limit: int = BATCH_SIZE, slot: int | None = None) -> int | None:
    """Handle up to `limit` unprocessed events, oldest first. Returns how many were taken.

    With `slot`, only that slot's customers' events, and None at once if another sweep holds
    the slot. Without, every customer's (tests and one-off drains)."""
    with system_scope(), transaction.atomic():
        pending = Event.all_tenants.filter(processed_at__isnull=True)
        if slot is not None:
            if not _take_slot(slot):
                return None
            slots = sweep_slots()
            if slots > 1:
                pending = pending.alias(slot=Mod(Coalesce(F("customer_id"), 0), slots)).filter(slot=slot)
        batch = list(
            pending.select_for_update(skip_locked=True, of=("self",))
            .select_related("customer", "order", "tenant")
            .order_by("created_at", "pk")[:limit]
        )
        for event in batch:
            try:
                with tenant_scope(event.tenant_id), transaction.atomic():
                    for react in reactions_to(event.type):
                        react(event)
            except OperationalError:
                # A deadlock, a lock or statement timeout, a lost connection: not the event's fault,
                # so no attempt is counted. It stays unprocessed for the next sweep (if the
                # connection is gone, the next statement fails and the whole batch with it).
                logger.warning("event %s (%s) hit a database error; left for the next sweep", event.pk,
                               event.type, exc_info=True)
                continue
            except Exception:
                event.process_attempts += 1
                logger.exception("event %s (%s) failed in a handler, attempt %s", event.pk, event.type,
                                 event.process_attempts)
                if event.process_attempts < MAX_ATTEMPTS:
                    Event.all_tenants.filter(pk=event.pk).update(process_attempts=event.process_attempts)
                    continue
            Event.all_tenants.filter(pk=event.pk).update(processed_at=clock.now(),
                                                         process_attempts=event.process_attempts)
    return len(batch)
