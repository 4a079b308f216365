"""Entry points lifecycle's events reach (lifecycle/event_types.py declares which and in what order), before journeys', so a
journey reacting to the same event already sees the points.

Idempotent per event: every write is keyed by the ledger's (customer, kind, source).
"""

from lifecycle.events import reaction
from lifecycle.models import Event

from . import services


@reaction("loyalty")
def on_event(event: Event) -> None:
    kind = event.type
    if kind == "order.paid" and event.order_id:
        services.order_points_earn(order=event.order)
    elif kind == "order.refunded" and event.order_id:
        refund_id = (event.data or {}).get("refund_external_id")
        if refund_id:
            services.order_points_refund(order=event.order, refund_external_id=refund_id)
    elif kind == "order.cancelled" and event.order_id:
        services.order_points_cancel(order=event.order)
    elif kind == "customer.erased" and event.customer_id:
        services.loyalty_customer_erase(tenant_id=event.tenant_id, customer_id=event.customer_id)
    elif kind == "review.approved" and event.customer_id:
        # Approved, not merely submitted: points for a review the store published, not for spam.
        program = services.program_for(event.tenant_id)
        review_id = (event.data or {}).get("review_id")
        if program and program.review_bonus and review_id:
            services.points_award(tenant=event.tenant, customer=event.customer, points=program.review_bonus,
                                  source=f"review:{review_id}", reason="Review published")
    elif event.customer_id and not kind.startswith(("order.", "customer.", "loyalty.")):
        program = services.program_for(event.tenant_id)
        points = int((program.event_bonuses or {}).get(kind) or 0) if program else 0
        if points > 0:
            services.points_award(tenant=event.tenant, customer=event.customer, points=points,
                                  source=f"event:{event.pk}", reason=kind)
