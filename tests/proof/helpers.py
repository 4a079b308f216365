"""Shared set-up for the proofs: a sent-email ledger built in bulk, and ESP tracking events."""

import datetime as dt
import itertools

from anymail.signals import AnymailTrackingEvent

from journeys.models import Delivery, EmailTemplate, Enrollment, Journey, Step
from lifecycle.models import Customer, Tenant

_batch = itertools.count(1)


def sent_ledger(tenant: Tenant, count: int, *, sent_at: dt.datetime,
                message_class: str = Journey.MessageClass.MARKETING) -> list[Delivery]:
    """`count` journey emails sent at `sent_at`, one customer each, as the engine records them."""
    n = next(_batch)
    template = EmailTemplate.objects.for_tenant(tenant).create(tenant=tenant, name=f"ledger {n}", subject="Hi",
                                                               body="<p>Hi</p>")
    journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, name=f"Ledger {n}", trigger="order_paid",
                                                        status="active", message_class=message_class)
    step = Step.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, position=1, template=template)
    customers = Customer.objects.for_tenant(tenant).bulk_create(
        Customer(tenant=tenant, external_id=f"ledger-{n}-{i}", email=f"l{n}.{i}@example.org", marketing_consent=True)
        for i in range(count))
    enrollments = Enrollment.objects.for_tenant(tenant).bulk_create(
        Enrollment(tenant=tenant, journey=journey, customer=c, state="completed", enrolled_at=sent_at)
        for c in customers)
    return Delivery.objects.for_tenant(tenant).bulk_create(
        Delivery(tenant=tenant, enrollment=e, step=step, journey=journey, customer_id=e.customer_id,
                 message_class=message_class, state="sent", due_at=sent_at, sent_at=sent_at,
                 message_id=f"<journey.{tenant.pk}.l{n}.{i}@example.test>", esp_message_id=f"esp-{n}-{i}")
        for i, e in enumerate(enrollments))


def tracking(delivery: Delivery, event_type: str, *, at: dt.datetime, reject_reason: str | None = None,
             esp_type: str = "") -> AnymailTrackingEvent:
    """An anymail tracking event about `delivery`, shaped as anymail normalizes Postmark's."""
    return AnymailTrackingEvent(event_type=event_type, timestamp=at, message_id=delivery.esp_message_id,
                                recipient=delivery.customer.email, reject_reason=reject_reason,
                                esp_event={"Type": esp_type}, metadata={"tenant_id": str(delivery.tenant_id)})
