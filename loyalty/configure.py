"""The store's own loyalty settings: its program, tiers and rewards catalog (the workspace's settings pages).

Each write is one transaction under the program's row lock, with a `store.*` event on the store's
timeline naming who did it and what changed. Values arrive validated (the page's form); what only
the database can know (another tier with that name or threshold, written meanwhile) is a
ServiceError with the field it concerns, and nothing is written.
"""

from typing import Any

from django.db import IntegrityError, transaction

from lifecycle import clock
from lifecycle.changes import json_safe
from lifecycle.errors import ServiceError
from lifecycle.models import Tenant
from lifecycle.timeline import event_append

from .models import LoyaltyAccount, Program, Reward, Tier

PROGRAM_FIELDS = ("enabled", "points_per_unit", "pending_days", "first_order_bonus", "review_bonus", "birthday_bonus",
                  "event_bonuses", "tier_basis", "tier_downgrade", "expiry_months", "expiry_warning_days")
TIER_FIELDS = ("name", "threshold", "multiplier", "perks")
REWARD_FIELDS = ("name", "kind", "cost", "value", "currency", "product_external_id", "code_source", "code_prefix")


def _event(tenant: Tenant, type_: str, data: dict[str, Any]) -> None:
    event_append(tenant=tenant, type=type_, occurred_at=clock.now(), data=data)


def _assign(obj, fields: tuple[str, ...], values: dict[str, Any]) -> list[str]:
    changed = [name for name in fields if name in values and getattr(obj, name) != values[name]]
    for name in changed:
        setattr(obj, name, values[name])
    return changed


def _changes(before: dict[str, Any], obj, changed: list[str]) -> dict[str, list[Any]]:
    """{field: [before, after]} of what changed, JSON-safe (the audit log shows it)."""
    return {name: [json_safe(before[name]), json_safe(getattr(obj, name))] for name in changed}


def loyalty_program_save(*, tenant: Tenant, values: dict[str, Any], by: str) -> tuple[Program, list[str]]:
    """Create the store's program, or change it. Returns it with the fields that changed."""
    with transaction.atomic():
        program = Program.objects.for_tenant(tenant).select_for_update().first()
        created = program is None
        if created:
            program = Program(tenant=tenant)
        before = {name: getattr(program, name) for name in PROGRAM_FIELDS}
        changed = _assign(program, PROGRAM_FIELDS, values)
        if not (created or changed):
            return program, []
        program.save()
        changes = _changes(before, program, changed)
        _event(tenant, "store.loyalty_program_created" if created else "store.loyalty_program_changed",
               {"fields": changed, "changes": changes, "by": by})
    return program, changed


def _locked_program(tenant: Tenant) -> Program:
    program = Program.objects.for_tenant(tenant).select_for_update().first()
    if program is None:
        raise ServiceError("loyalty.no_program", "Set up the loyalty program first.")
    return program


def _tier_clash(program: Program, values: dict[str, Any], exclude_pk: int | None) -> None:
    others = Tier.objects.for_tenant(program.tenant_id).filter(program=program).exclude(pk=exclude_pk)
    if others.filter(name__iexact=values["name"]).exists():
        raise ServiceError("loyalty.tier_name_taken", f"There is a tier called “{values['name']}” already.",
                           {"name": ["taken"]})
    if others.filter(threshold=values["threshold"]).exists():
        raise ServiceError("loyalty.tier_threshold_taken", f"Another tier starts at {values['threshold']}: "
                           "each tier needs its own threshold.", {"threshold": ["taken"]})


def loyalty_tier_save(*, tenant: Tenant, values: dict[str, Any], by: str, tier: Tier | None = None) -> Tier:
    """Add a tier (tier=None) or change one. Customers move at the next tier sweep or earn."""
    with transaction.atomic():
        program = _locked_program(tenant)
        if tier is not None:
            tier = Tier.objects.for_tenant(tenant).select_for_update().get(pk=tier.pk, program=program)
        _tier_clash(program, values, tier.pk if tier else None)
        created = tier is None
        tier = tier or Tier(tenant=tenant, program=program)
        before = {name: getattr(tier, name) for name in TIER_FIELDS}
        changed = _assign(tier, TIER_FIELDS, values)
        if not (created or changed):
            return tier
        try:
            with transaction.atomic():
                tier.save()
        except IntegrityError:
            raise ServiceError("loyalty.tier_taken", "Another tier has this name or threshold.") from None
        _event(tenant, "store.loyalty_tier_added" if created else "store.loyalty_tier_changed",
               {"tier": tier.name, "tier_id": tier.pk, "fields": changed, "changes": _changes(before, tier, changed),
                "by": by})
    return tier


def loyalty_tier_remove(*, tenant: Tenant, tier: Tier, by: str) -> int:
    """Remove a tier. Its members lose it now (the account's tier is set null) and re-qualify for
    the others at the next sweep. Returns how many customers were in it."""
    with transaction.atomic():
        program = _locked_program(tenant)
        locked = Tier.objects.for_tenant(tenant).select_for_update().get(pk=tier.pk, program=program)
        members = LoyaltyAccount.objects.for_tenant(tenant).filter(tier=locked).count()
        name, pk = locked.name, locked.pk
        locked.delete()
        _event(tenant, "store.loyalty_tier_removed", {"tier": name, "tier_id": pk, "members": members, "by": by})
    return members


def loyalty_reward_save(*, tenant: Tenant, values: dict[str, Any], by: str, reward: Reward | None = None) -> Reward:
    """Add a reward to the catalog (reward=None) or change one. Redemptions already made keep their code."""
    with transaction.atomic():
        program = _locked_program(tenant)
        if reward is not None:
            reward = Reward.objects.for_tenant(tenant).select_for_update().get(pk=reward.pk, program=program)
        created = reward is None
        reward = reward or Reward(tenant=tenant, program=program)
        before = {name: getattr(reward, name) for name in REWARD_FIELDS}
        changed = _assign(reward, REWARD_FIELDS, values)
        if not (created or changed):
            return reward
        reward.save()
        _event(tenant, "store.loyalty_reward_added" if created else "store.loyalty_reward_changed",
               {"reward": reward.name, "reward_id": reward.pk, "fields": changed,
                "changes": _changes(before, reward, changed), "by": by})
    return reward


def loyalty_reward_set_active(*, tenant: Tenant, reward: Reward, active: bool, by: str) -> bool:
    """Take a reward off the catalog (customers can no longer redeem it) or put it back. False when unchanged.
    Rewards are never deleted: redemptions point at them."""
    with transaction.atomic():
        updated = Reward.objects.for_tenant(tenant).filter(pk=reward.pk).exclude(active=active).update(active=active)
        if updated:
            _event(tenant, "store.loyalty_reward_activated" if active else "store.loyalty_reward_deactivated",
                   {"reward": reward.name, "reward_id": reward.pk, "by": by})
    reward.active = active
    return bool(updated)
