import random
import time

from celery import shared_task

from .events import BATCH_SIZE, events_process_pending, sweep_slots
from .periodic import every
from .queues import EVENTS, on_queue

# A sweep hands its worker process back after about this long, however many events wait; beat
# starts the next one within seconds, so a burst of events never holds the pool from the sends.
SWEEP_SECONDS = 10.0


@every(2.0, key="process-events")
# EVENTS: a sweep holds its process for up to SWEEP_SECONDS; a burst of them must hold back no send.
@on_queue(EVENTS)
@shared_task(name="lifecycle.process_events", ignore_result=True)
def process_events() -> int:
    """Drain the event outbox (beat, every few seconds). Safe to run on many workers at once:
    each sweep works the slots no other sweep holds (lifecycle/events.py) and returns at once
    when every slot is taken."""
    total = 0
    deadline = time.monotonic() + SWEEP_SECONDS
    slots = sweep_slots()
    first = random.randrange(slots)
    for slot in [(first + offset) % slots for offset in range(slots)]:
        while True:
            taken = events_process_pending(limit=BATCH_SIZE, slot=slot)
            if taken is None:  # another sweep has this slot
                break
            total += taken
            if time.monotonic() >= deadline:
                return total
            if taken < BATCH_SIZE:
                break
    return total

