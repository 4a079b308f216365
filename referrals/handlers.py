"""Entry point lifecycle's events reach (lifecycle/event_types.py declares which and in what order). Idempotent per event:
attribution is unique per order and every rejection is a conditional UPDATE."""

from collections.abc import Sequence

from lifecycle.events import reaction, sweep_memo
from lifecycle.models import Event

from .models import Program, Referral
from .services import (
    order_codes,
    order_refunded,
    referral_attribute,
    referral_reject_for_order,
    referrals_customer_erase,
)


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


@reaction("referrals", batch=True)
def on_events(events: Sequence[Event]) -> None:
    """`on_event` for many events of one tenant, each customer at most once. Most orders carry no
    code and most refunds and cancellations concern orders nobody referred: those are told apart
    with two reads for the whole batch, and only the others go through `on_event`."""
    order_events = [e for e in events if e.type in ("order.paid", "order.refunded", "order.cancelled")
                    and not e.backfill and e.order_id is not None]
    left = [e for e in events if e.type == "customer.erased"]
    paid = [e for e in order_events if e.type == "order.paid" and e.order.customer_id is not None
            and e.order.paid_at is not None and order_codes(e.order)]
    if paid and sweep_memo(("referrals.active", paid[0].tenant_id),
                           Program.objects.for_tenant(paid[0].tenant_id).filter(active=True).exists):
        left += paid
    undone = [e for e in order_events if e.type != "order.paid"]
    if undone:
        referred = set(Referral.objects.for_tenant(undone[0].tenant_id).filter(
            order_id__in=[e.order_id for e in undone]).values_list("order_id", flat=True))
        left += [e for e in undone if e.order_id in referred]
    for event in sorted(left, key=lambda e: (e.created_at, e.pk)):
        on_event(event)
