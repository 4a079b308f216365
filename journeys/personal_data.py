"""One customer's data as JSON (GDPR Art. 15 and 20): everything the store holds about them, from every app.

It lives here because journeys is the highest domain layer: it may read lifecycle, loyalty, referrals and
feedback, and its own deliveries. Each section is the rows of one model that name the customer, every column
but the tenant, so a new column is exported the day it exists. Read-only: the caller records who asked
(the workspace's button and the API both append `store.customer_exported`).
"""

from typing import Any

from django.db import models

from feedback.models import Review, SurveyRequest, SurveyResponse
from lifecycle import clock
from lifecycle.changes import json_safe
from lifecycle.models import Customer, Event, Order, OrderLine, Tenant
from lifecycle.timeline import event_append
from loyalty.models import LedgerEntry, LoyaltyAccount, Redemption
from referrals.models import Referral, ReferralCode
from referrals.models import Reward as ReferralReward

from .models import Delivery, Enrollment

FORMAT_VERSION = 1
# (section, model, the lookup from the model to the customer)
SECTIONS: tuple[tuple[str, type[models.Model], str], ...] = (
    ("orders", Order, "customer"),
    ("order_lines", OrderLine, "order__customer"),
    ("timeline", Event, "customer"),
    ("loyalty_accounts", LoyaltyAccount, "customer"),
    ("loyalty_ledger", LedgerEntry, "customer"),
    ("loyalty_redemptions", Redemption, "customer"),
    ("referral_codes", ReferralCode, "customer"),
    ("referrals_made", Referral, "advocate"),
    ("referrals_received", Referral, "friend"),
    ("referral_rewards", ReferralReward, "customer"),
    ("survey_requests", SurveyRequest, "customer"),
    ("survey_answers", SurveyResponse, "customer"),
    ("reviews", Review, "customer"),
    ("journey_enrollments", Enrollment, "customer"),
    ("emails", Delivery, "customer"),
)
HIDDEN = {"tenant_id", "tenant"}


def _rows(queryset) -> list[dict[str, Any]]:
    return [{k: json_safe(v) for k, v in row.items() if k not in HIDDEN} for row in queryset.order_by("pk").values()]


def customer_personal_data(*, tenant: Tenant, customer: Customer) -> dict[str, Any]:
    """Everything about `customer` (of `tenant`), as JSON-safe values."""
    data: dict[str, Any] = {"format_version": FORMAT_VERSION, "store": tenant.name, "exported_at": json_safe(clock.now()),
                            "customer": _rows(Customer.objects.for_tenant(tenant).filter(pk=customer.pk))[0]}
    for section, model, lookup in SECTIONS:
        data[section] = _rows(model.objects.for_tenant(tenant).filter(**{lookup: customer}))
    return data


def customer_export_record(*, tenant: Tenant, customer: Customer, by: str) -> None:
    """The audit log's line for an export: who took this customer's data, and when."""
    event_append(tenant=tenant, type="store.customer_exported", occurred_at=clock.now(),
                 data={"customer": customer.external_id or customer.email or str(customer.pk), "by": by})
