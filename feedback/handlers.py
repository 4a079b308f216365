"""Entry points lifecycle's events reach (settings.EVENT_HANDLERS)."""

from lifecycle.models import Event

from .services import feedback_customer_erase


def on_event(event: Event) -> None:
    """Idempotent per event: erasing twice leaves the same rows."""
    if event.type == "customer.erased" and event.customer_id:
        feedback_customer_erase(tenant_id=event.tenant_id, customer_id=event.customer_id)
