from celery import shared_task

from .events import BATCH_SIZE, events_process_pending
from .tenancy import system_scope


@shared_task(name="lifecycle.process_events", ignore_result=True)
def process_events() -> int:
    """Drain the event outbox (beat, every few seconds). Safe to run on many workers at once."""
    total = 0
    while True:
        taken = events_process_pending()
        total += taken
        if taken < BATCH_SIZE:
            return total


@shared_task(name="lifecycle.check_deliverability", ignore_result=True)
def check_deliverability() -> dict[str, int]:
    """Beat, every 15 minutes: warn or pause stores whose complaint or bounce rate is too high."""
    from .deliverability import deliverability_check_all

    with system_scope():
        return deliverability_check_all()
