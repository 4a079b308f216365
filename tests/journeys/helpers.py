import datetime as dt
import time

from journeys.models import EmailTemplate, Journey, Step
from lifecycle.events import events_process_pending


def make_journey(tenant, *, steps=(("P1D", "Day one"),), trigger=Journey.Trigger.ORDER_PAID, **fields) -> Journey:
    """A journey whose steps are (ISO duration after the previous step, subject) pairs."""
    from journeys.durations import parse_duration

    journey = Journey.objects.for_tenant(tenant).create(
        tenant=tenant, name=fields.pop("name", f"Journey {trigger}"), trigger=trigger,
        status=fields.pop("status", Journey.Status.ACTIVE), **fields)
    for position, (wait, subject) in enumerate(steps, start=1):
        template = EmailTemplate.objects.for_tenant(tenant).create(
            tenant=tenant, name=f"{journey.name} {position}", subject=subject,
            body="<p>Hi {{ first_name }}, thanks for order {{ order.number }}.</p>", signature="Mia from Acme")
        Step.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, position=position,
                                               wait=parse_duration(wait), template=template)
    return journey


def process_events() -> int:
    total = 0
    while taken := events_process_pending():
        total += taken
    return total


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def wait_for(condition, timeout: float, what: str):
    """Poll `condition` every 0.2 s until it returns something true (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
