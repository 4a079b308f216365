"""Entry points lifecycle's events reach (lifecycle/event_types.py declares which and in what order)."""

from lifecycle.events import reaction
from lifecycle.models import Event

from .services import feedback_customer_erase


@reaction("feedback")
def on_event(event: Event) -> None:
    """Idempotent per event: erasing twice leaves the same rows."""
    if event.type == "customer.erased" and event.customer_id:
        feedback_customer_erase(tenant_id=event.tenant_id, customer_id=event.customer_id)
