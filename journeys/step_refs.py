"""What the discount-code, check-in and webhook steps name in the store: a loyalty reward's code pool, a team
member, the store's webhook signing secret. Read here once, for the import (a 400 naming the field), the
builder's checks before a journey goes live, and the send (journeys/discounts.py, journeys/rendering.py)."""

from typing import Any

from lifecycle.models import Membership, Tenant
from loyalty.models import Reward

from .models import EnrollmentVariable, Step, WebhookSecret


def pool_reward(tenant: Tenant | int, name: str) -> Reward | None:
    """The store's reward of that name whose codes come from an uploaded pool (active or not: an inactive
    reward's pool still holds codes a journey may give)."""
    return (Reward.objects.for_tenant(tenant).filter(name=name, code_source=Reward.CodeSource.POOL)
            .order_by("pk").first())


def pool_problem(tenant: Tenant | int, config: dict[str, Any]) -> str | None:
    if (config or {}).get("source", "pool") != "pool" or not (config or {}).get("pool"):
        return None
    if pool_reward(tenant, config["pool"]) is None:
        names = sorted(Reward.objects.for_tenant(tenant).filter(code_source=Reward.CodeSource.POOL)
                       .values_list("name", flat=True))
        hint = f"; the store's pools: {', '.join(repr(n) for n in names)}" if names else (
            "; the store has none yet: add a loyalty reward whose codes come from a pool and upload its codes")
        return f"{config['pool']!r} is not a loyalty reward with a pool of codes{hint}"
    return None


def signer_member(tenant: Tenant | int, email: str):
    """The team member (a user) with this address, or None: only a member of this store may sign."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    member = (Membership.objects.filter(tenant_id=tenant_id, user__email__iexact=email)
              .select_related("user").first())
    return member.user if member is not None else None


def signer_name(user) -> str:
    full = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return full or (user.email.split("@")[0] if user.email else user.get_username())


def signer_problem(tenant: Tenant | int, config: dict[str, Any]) -> str | None:
    signer = (config or {}).get("signer")
    if not signer:
        return None
    if signer_member(tenant, signer) is None:
        return f"{signer!r} is not a member of this store's team: invite them first, or pick a member"
    return None


def has_webhook_secret(tenant: Tenant | int) -> bool:
    return WebhookSecret.objects.for_tenant(tenant).exists()


def reference_problems(tenant: Tenant | int, kind: str, config: dict[str, Any]) -> dict[str, str]:
    """By config key: what a step of `kind` names that the store does not have."""
    found: dict[str, str] = {}
    if kind == Step.Kind.DISCOUNT_CODE and (problem := pool_problem(tenant, config)):
        found["pool"] = problem
    if kind == Step.Kind.CHECK_IN and (problem := signer_problem(tenant, config)):
        found["signer"] = problem
    return found



def enrollment_variables(enrollment_ids: list[int], tenant_id: int) -> dict[int, dict[str, str]]:
    """What earlier steps made for each enrollment ({"discount_code": …}), the latest value of each name."""
    found: dict[int, dict[str, str]] = {}
    for enrollment_id, name, value in (EnrollmentVariable.objects.for_tenant(tenant_id)
                                       .filter(enrollment_id__in=enrollment_ids).order_by("pk")
                                       .values_list("enrollment_id", "name", "value")):
        found.setdefault(enrollment_id, {})[name] = value
    return found


def signers(tenant_id: int, emails: set[str]) -> dict[str, dict[str, str]]:
    """By address (lower case): the team members among `emails`, as a template sees them."""
    members = Membership.objects.filter(tenant_id=tenant_id, user__email__in=[e for e in emails if e]).select_related("user")
    found = {m.user.email.lower(): {"name": signer_name(m.user), "email": m.user.email} for m in members}
    if len(found) < len({e.lower() for e in emails}):  # an address written in another case
        for email in emails:
            if email.lower() not in found and (user := signer_member(tenant_id, email)) is not None:
                found[email.lower()] = {"name": signer_name(user), "email": user.email}
    return found
