"""Refunds: recorded once by external id, never more than the order's total."""

from django.db import transaction
from django.db.models import F

from . import clock
from .aggregates import customer_refresh_aggregates
from .errors import ServiceError
from .inputs import RefundIn
from .locks import advisory_lock, retry_once_on_conflict
from .models import (
    Order,
    Refund,
    Tenant,
)
from .money import money_str
from .orders import order_locked, order_placeholder
from .timeline import event_append


def refund_record(*, tenant: Tenant, order_external_id: str, data: RefundIn, source: str = Order.Source.API,
                  create_missing_order_in: str | None = None) -> tuple[Refund, bool]:
    """Record a refund once per refund id; the order's refunded total is the sum of its refunds.

    A refund larger than what is left to refund is refused, unless the order is still a
    placeholder (total unknown because the platform sent the refund first).
    """

    def run() -> tuple[Refund, bool]:
        with transaction.atomic():
            if create_missing_order_in:
                advisory_lock(tenant.pk, "order", order_external_id)
                order = order_placeholder(tenant=tenant, external_id=order_external_id,
                                          currency=create_missing_order_in, source=source)
            else:
                order = order_locked(tenant, order_external_id)
            existing = Refund.objects.for_tenant(tenant).filter(order=order, external_id=data.external_id).first()
            if existing:
                return existing, False
            remaining = order.total - order.refunded_total
            is_placeholder = order.placed_at is None
            if not is_placeholder and data.amount > remaining:
                raise ServiceError(
                    "refunds.exceeds_total",
                    f"refund of {money_str(data.amount, order.currency)} {order.currency} exceeds the "
                    f"{money_str(remaining, order.currency)} {order.currency} left to refund on this order",
                    {"amount": [f"must be at most {money_str(remaining, order.currency)}"]},
                )
            refund = Refund.objects.for_tenant(tenant).create(
                tenant=tenant, order=order, external_id=data.external_id, amount=data.amount,
                currency=order.currency, reason=data.reason, refunded_at=data.refunded_at or clock.now(),
            )
            Order.objects.for_tenant(tenant).filter(pk=order.pk).update(refunded_total=F("refunded_total") + data.amount)
            order.refresh_from_db()
            new_status = order.derive_status()
            if new_status != order.status:
                Order.objects.for_tenant(tenant).filter(pk=order.pk).update(status=new_status)
                order.status = new_status
            event_append(
                tenant=tenant, type="order.refunded", occurred_at=refund.refunded_at, customer=order.customer,
                order=order, dedupe_key=f"order.refunded:{order.pk}:{refund.external_id}",
                data={"amount": money_str(refund.amount, refund.currency), "currency": refund.currency, "reason": refund.reason,
                      "refund_external_id": refund.external_id, "full": new_status == Order.Status.REFUNDED},
            )
            if order.customer_id:
                customer_refresh_aggregates(customer=order.customer)
            return refund, True

    return retry_once_on_conflict(run)
