"""Customers: upsert by external id or email, the events a storefront records for them, consent, suppression and erasure."""

import hashlib
from typing import Any

from django.db import transaction
from django.db.models import F

from . import clock
from .errors import NotFound
from .inputs import CustomerIn, EventIn
from .locks import advisory_lock, retry_once_on_conflict
from .models import (
    Customer,
    Event,
    Order,
    Tenant,
)
from .tables import CUSTOMERS, EVENTS
from .timeline import event_append, event_row


def _customer_find(tenant: Tenant, data: CustomerIn) -> Customer | None:
    customers = Customer.objects.for_tenant(tenant)
    if data.external_id:
        found = customers.filter(external_id=data.external_id).first()
        if found:
            return found
        if data.email:
            # A guest who now has an account: adopt the guest record.
            return customers.filter(email=data.email, external_id__isnull=True).first()
        return None
    # Only an email: a guest checkout, perhaps by someone who also has an account.
    return customers.filter(email=data.email).order_by(F("external_id").asc(nulls_last=True), "pk").first()


def customer_apply(customer: Customer, data: CustomerIn, source: str) -> bool:
    changed = False
    updates = {
        "external_id": data.external_id,
        "email": data.email,
        "first_name": data.first_name,
        "last_name": data.last_name,
        "locale": data.locale,
        "time_zone": data.time_zone,
    }
    for field, value in updates.items():
        if value and getattr(customer, field) != value:
            setattr(customer, field, value)
            changed = True
    # Platforms deliver out of order: a consent stated as of an earlier time than the one
    # we hold (a retried webhook from before an unsubscribe) must not undo the newer one.
    stale_consent = (data.consent_updated_at is not None and customer.consent_updated_at is not None
                     and data.consent_updated_at < customer.consent_updated_at)
    if (data.marketing_consent is not None and customer.marketing_consent != data.marketing_consent
            and not stale_consent):
        customer.marketing_consent = data.marketing_consent
        customer.consent_updated_at = data.consent_updated_at or clock.now()
        customer.consent_source = source
        changed = True
    return changed


def customer_upsert(*, tenant: Tenant, data: CustomerIn, source: str) -> tuple[Customer, bool]:
    """Find the customer by external id, else by email, and update what the store told us.

    Locks the customer's email (or external id) for the rest of the caller's transaction.
    """
    advisory_lock(tenant.pk, "customer", customer_lock_key(data))
    customer, created = customer_write(tenant, _customer_find(tenant, data), data, source)
    if created:
        CUSTOMERS.insert([customer])
        EVENTS.insert_dicts([customer_created_event(tenant, customer)])
    return customer, created


def customer_import(*, tenant: Tenant, data: CustomerIn, source: str) -> str:
    """customer_upsert for an import: "created", "updated" or "unchanged" (a file imported twice changes nothing)."""
    advisory_lock(tenant.pk, "customer", customer_lock_key(data))
    found = _customer_find(tenant, data)
    if found is None:
        customer, _created = customer_write(tenant, None, data, source)
        CUSTOMERS.insert([customer])
        EVENTS.insert_dicts([customer_created_event(tenant, customer)])
        return "created"
    if not customer_apply(found, data, source):
        return "unchanged"
    found.save()
    return "updated"


def customer_lock_key(data: CustomerIn) -> str:
    return data.email or data.external_id or ""


def customer_write(tenant: Tenant, found: Customer | None, data: CustomerIn, source: str) -> tuple[Customer, bool]:
    """Update the customer found with what the store told us, or make a new one, which the
    caller inserts (with its first order's aggregates, when it has one). Returns (customer, created)."""
    if found is None:
        customer = Customer(tenant=tenant)
        customer_apply(customer, data, source)
        return customer, True
    if customer_apply(found, data, source):
        found.save()
    return found, False


def customer_created_event(tenant: Tenant, customer: Customer) -> dict[str, Any]:
    return event_row(tenant=tenant, type="customer.created", customer=customer, occurred_at=clock.now(),
                  dedupe_key=f"customer.created:{customer.pk}")


def customer_erase(*, tenant: Tenant, external_id: str | None = None, customer_id: int | None = None) -> Customer:
    """Erase a customer's personal data (GDPR Art. 17). Orders and aggregates stay, anonymous;
    a SHA-256 of the address is kept only so that nothing is ever sent to it again.

    The customer is named by external id (the API) or by primary key (the workspace, which can
    also erase guests: they have no external id). Erasing an erased customer changes nothing.
    """
    if (external_id is None) == (customer_id is None):
        raise ValueError("name the customer by external_id or by customer_id")
    lookup = {"pk": customer_id} if customer_id is not None else {"external_id": external_id}
    with transaction.atomic():
        customer = Customer.objects.for_tenant(tenant).select_for_update().filter(**lookup).first()
        if customer is None:
            raise NotFound("customers.not_found", f"no customer with external_id {external_id!r}")
        if customer.erased_at is not None:
            return customer
        email_hash = hashlib.sha256(customer.email.encode()).hexdigest() if customer.email else ""
        now = clock.now()
        customer.external_id = None
        customer.email = ""
        customer.first_name = customer.last_name = ""
        customer.locale = customer.time_zone = ""
        customer.marketing_consent = False
        customer.consent_updated_at = now
        customer.consent_source = Customer.ConsentSource.API
        customer.suppressed_at = now
        customer.suppression_reason = "erased"
        customer.erased_at = now
        customer.save()
        Event.objects.for_tenant(tenant).filter(customer=customer).update(data={})
        Order.objects.for_tenant(tenant).filter(customer=customer).update(landing_site="", referring_site="")
        event_append(tenant=tenant, type="customer.erased", customer=customer, occurred_at=now,
                     data={"email_sha256": email_hash}, dedupe_key=f"customer.erased:{customer.pk}")
    return customer


def customer_unsubscribe(*, customer: Customer, source: str = Customer.ConsentSource.UNSUBSCRIBE,
                         detail: str = "") -> bool:
    """Stop all marketing email to this customer from this store, at once. Idempotent.

    Returns False when they already were unsubscribed. Emits customer.unsubscribed, which
    ends journeys that exit on it; the send gate also checks `unsubscribed_at` itself.
    """
    with transaction.atomic():
        locked = Customer.objects.for_tenant(customer.tenant_id).select_for_update().get(pk=customer.pk)
        if locked.unsubscribed_at is not None:
            return False
        now = clock.now()
        locked.unsubscribed_at = now
        locked.marketing_consent = False
        locked.consent_updated_at = now
        locked.consent_source = source
        locked.save(update_fields=["unsubscribed_at", "marketing_consent", "consent_updated_at", "consent_source",
                                   "updated_at"])
        event_append(tenant=locked.tenant, type="customer.unsubscribed", occurred_at=now, customer=locked,
                     data={"source": source, "detail": detail})
    return True


def customer_suppress(*, customer: Customer, reason: str) -> bool:
    """Never email this address again (hard bounce, spam complaint). Idempotent."""
    with transaction.atomic():
        updated = Customer.objects.for_tenant(customer.tenant_id).filter(
            pk=customer.pk, suppressed_at__isnull=True).update(suppressed_at=clock.now(), suppression_reason=reason)
        if updated:
            event_append(tenant=customer.tenant, type="customer.suppressed", occurred_at=clock.now(),
                         customer=customer, data={"reason": reason})
    return bool(updated)


def event_record(*, tenant: Tenant, data: EventIn) -> tuple[Event, bool]:
    """Record a storefront's custom event (support.contacted, feature.used …).

    With an idempotency_key the same event posted again is recorded once.
    """

    def run() -> tuple[Event, bool]:
        with transaction.atomic():
            customer, _ = customer_upsert(tenant=tenant, data=data.customer, source=Customer.ConsentSource.API)
            dedupe_key = f"custom:{data.idempotency_key}" if data.idempotency_key else None
            if dedupe_key:
                existing = Event.objects.for_tenant(tenant).filter(dedupe_key=dedupe_key).first()
                if existing:
                    return existing, False
            order = None
            if data.order_external_id:
                order = Order.objects.for_tenant(tenant).filter(external_id=data.order_external_id).first()
                if order is None:
                    raise NotFound("events.order_not_found", f"no order with external_id {data.order_external_id!r}")
            event = event_append(
                tenant=tenant, type=data.type, occurred_at=data.occurred_at or clock.now(), customer=customer,
                order=order, data=data.data, dedupe_key=dedupe_key,
            )
            return event, True

    return retry_once_on_conflict(run)
