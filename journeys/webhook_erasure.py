"""GDPR erasure (customer.erased) for outbound webhook calls: a call's stored body names the customer, so it
is rewritten without them, and a call not yet accepted is never sent: the receiver would get an erased
customer's data after the erasure. Attempts keep only status, latency and the receiver's answer."""

import json

from django.db import transaction

from .models import WebhookCall

ERASED = "customer erased"


def webhook_calls_erase(*, tenant_id: int, customer_id: int) -> int:
    """Strip the customer from their calls' bodies; pending ones fail with "customer erased". Idempotent.
    Returns how many calls were rewritten."""
    calls = WebhookCall.objects.for_tenant(tenant_id).filter(customer_id=customer_id)
    rewritten = 0
    with transaction.atomic():
        for call in calls.select_for_update().only("pk", "body", "state"):
            try:
                payload = json.loads(call.body)
            except ValueError:
                payload = {}
            erased = {"id": payload.get("id", ""), "type": payload.get("type", ""),
                      "created_at": payload.get("created_at", ""), "customer": None, "erased": True}
            changes = {"body": json.dumps(erased, sort_keys=True, separators=(",", ":"))}
            if call.state == WebhookCall.State.PENDING:
                changes.update(state=WebhookCall.State.FAILED, last_error=ERASED, lease_until=None)
            rewritten += calls.filter(pk=call.pk).update(**changes)
    return rewritten
