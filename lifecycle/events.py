"""Events are the outbox: features react to them from here, in order, each event once.

The handlers are listed in settings.EVENT_HANDLERS (dotted paths), called explicitly one
after another — no Django signals. A beat task drains unprocessed events every few
seconds with `FOR UPDATE SKIP LOCKED`, so several workers share the work and a lost broker
message loses nothing: the row is still unprocessed and the next sweep takes it.
Handlers must be idempotent (keyed by the event's id): an event whose transaction failed
is handled again.

The sweep works across tenants (`system_scope`, for row-level security); each event's handlers
run in its own tenant's scope, so a handler sees no other store's rows.
"""

import functools
import logging
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from . import clock
from .models import Event
from .tenancy import system_scope, tenant_scope

logger = logging.getLogger(__name__)

# Events per sweep transaction: enough to keep up with bursts, short enough to hold locks briefly.
BATCH_SIZE = 200
# An event that keeps failing is set aside (processed, with attempts recorded) instead of
# blocking the sweep forever; the log says which and why.
MAX_ATTEMPTS = 5


@functools.cache
def handlers() -> list[Callable[[Event], None]]:
    return [import_string(path) for path in settings.EVENT_HANDLERS]


def events_process_pending(*, limit: int = BATCH_SIZE) -> int:
    """Handle up to `limit` unprocessed events, oldest first. Returns how many were taken."""
    with system_scope(), transaction.atomic():
        batch = list(
            Event.all_tenants.select_for_update(skip_locked=True, of=("self",))
            .filter(processed_at__isnull=True)
            .select_related("customer", "order", "tenant")
            .order_by("created_at", "pk")[:limit]
        )
        for event in batch:
            try:
                with tenant_scope(event.tenant_id), transaction.atomic():
                    for handler in handlers():
                        handler(event)
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
