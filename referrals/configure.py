"""The store's own referral program settings (the workspace's settings page).

One transaction under the program's row lock, with a `store.referral_program_*` event on the
store's timeline naming who did it and which fields changed. Values arrive validated (the page's
form). Referrals already made keep the release date and review deadline they were given.
"""

from typing import Any

from django.db import transaction

from lifecycle import clock
from lifecycle.changes import field_changes
from lifecycle.models import Tenant
from lifecycle.timeline import event_append

from .models import Program

PROGRAM_FIELDS = ("active", "store_url", "currency", "friend_offer_kind", "friend_offer_value", "friend_reward_kind",
                  "friend_reward_amount", "advocate_reward_kind", "advocate_reward_amount", "advocate_tiers",
                  "new_customers_only", "min_order_total", "release_delay_days", "advocate_monthly_cap",
                  "max_clicks_per_ip_per_day", "max_conversions_per_advocate_per_day", "review_deadline_hours",
                  "review_auto_decision", "reward_webhook_url")


def referral_program_save(*, tenant: Tenant, values: dict[str, Any], by: str) -> tuple[Program, list[str]]:
    """Create the store's referral program, or change it. Returns it with the fields that changed."""
    with transaction.atomic():
        program = Program.objects.for_tenant(tenant).select_for_update().first()
        created = program is None
        if created:
            program = Program(tenant=tenant)
        changed = [name for name in PROGRAM_FIELDS if name in values and getattr(program, name) != values[name]]
        if not (created or changed):
            return program, []
        changes = field_changes(program, changed, values)
        for name in changed:
            setattr(program, name, values[name])
        program.save()
        event_append(tenant=tenant, occurred_at=clock.now(), data={"fields": changed, "changes": changes, "by": by},
                     type="store.referral_program_created" if created else "store.referral_program_changed")
    return program, changed
