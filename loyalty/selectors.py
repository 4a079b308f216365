"""Reads the loyalty page, the API and journeys share. Nothing here writes."""

import dataclasses
import datetime as dt
from decimal import Decimal

from lifecycle import clock
from lifecycle.models import Customer

from .models import LedgerEntry, LoyaltyAccount, Program, Redemption, Reward, Tier
from .services import tier_qualifying

HISTORY_LIMIT = 50


def plain(value: Decimal | None) -> str | None:
    """130, 12.5 — never 1.3E+2."""
    return None if value is None else f"{value.normalize():f}"


@dataclasses.dataclass(frozen=True)
class TierProgress:
    tier: str
    next_tier: str
    qualifying: Decimal
    next_threshold: Decimal | None
    remaining: Decimal | None
    percent: int
    basis: str

    @property
    def remaining_text(self) -> str:
        return plain(self.remaining) or ""


@dataclasses.dataclass(frozen=True)
class LoyaltySummary:
    balance: int
    pending: int
    debt: int
    lifetime_earned: int
    progress: TierProgress | None
    history: list[LedgerEntry]
    rewards: list[Reward]
    redemptions: list[Redemption]
    program: Program | None
    tiers: list[Tier]
    birthday: dt.date | None = None


def customer_points(*, tenant: int, customer_id: int) -> tuple[int, str]:
    """(available balance, tier name) — for journeys' email context and conditions."""
    row = (LoyaltyAccount.objects.for_tenant(tenant).filter(customer_id=customer_id)
           .values_list("balance", "tier__name").first())
    return (row[0], row[1] or "") if row else (0, "")


def tier_progress(account: LoyaltyAccount | None, program: Program, tiers: list[Tier],
                  now: dt.datetime) -> TierProgress:
    qualifying = tier_qualifying(account, program, now) if account else Decimal(0)
    current = account.tier if account and account.tier_id else None
    above = [t for t in tiers if t.threshold > (current.threshold if current else Decimal("-1"))]
    nxt = next((t for t in above if t.threshold > qualifying), above[0] if above else None)
    if nxt is None:
        return TierProgress(current.name if current else "", "", qualifying, None, None, 100, program.tier_basis)
    remaining = max(Decimal(0), nxt.threshold - qualifying)
    percent = 100 if nxt.threshold <= 0 else min(100, int(qualifying * 100 / nxt.threshold))
    return TierProgress(current.name if current else "", nxt.name, qualifying, nxt.threshold, remaining,
                        max(0, percent), program.tier_basis)


def loyalty_summary(*, tenant: int, customer: Customer) -> LoyaltySummary:
    program = Program.objects.for_tenant(tenant).filter(enabled=True).first()
    account = LoyaltyAccount.objects.for_tenant(tenant).select_related("tier").filter(customer=customer).first()
    tiers = list(Tier.objects.for_tenant(tenant).filter(program=program).order_by("threshold")) if program else []
    history = (list(LedgerEntry.objects.for_tenant(tenant).filter(account=account).order_by("-created_at", "-pk")
                    [:HISTORY_LIMIT]) if account else [])
    rewards = (list(Reward.objects.for_tenant(tenant).filter(program=program, active=True).order_by("cost", "pk"))
               if program else [])
    redemptions = (list(Redemption.objects.for_tenant(tenant).filter(account=account).select_related("reward")
                        .order_by("-created_at", "-pk")[:HISTORY_LIMIT]) if account else [])
    progress = tier_progress(account, program, tiers, clock.now()) if program and tiers else None
    return LoyaltySummary(
        balance=account.balance if account else 0, pending=account.pending if account else 0,
        debt=account.debt if account else 0, lifetime_earned=account.lifetime_earned if account else 0,
        progress=progress, history=history, rewards=rewards, redemptions=redemptions, program=program, tiers=tiers,
        birthday=account.birthday if account else None)
