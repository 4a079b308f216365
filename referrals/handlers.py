"""Entry point lifecycle's events reach (lifecycle/event_types.py declares which and in what order). Idempotent per event:
attribution is unique per order and every rejection is a conditional UPDATE."""

from lifecycle.events import reaction
from lifecycle.models import Event

from .services import order_refunded, referral_attribute, referral_reject_for_order, referrals_customer_erase


@reaction("referrals")
def on_event(event: Event) -> None:
    if event.type == "customer.erased" and event.customer_id:
        referrals_customer_erase(tenant_id=event.tenant_id, customer_id=event.customer_id)
        return
    if event.backfill or event.order_id is None:
        return
    if event.type == "order.paid":
        referral_attribute(tenant=event.tenant, order=event.order)
    elif event.type == "order.refunded":
        event.order.refresh_from_db()  # the refunded total now, not when the event was written
        order_refunded(tenant=event.tenant, order=event.order)
    elif event.type == "order.cancelled":
        referral_reject_for_order(tenant=event.tenant, order=event.order,
                                  reason="order cancelled before the reward was released")
