"""Every change to points goes through here: one transaction per call, the account row locked.

How a movement is written (`_append`): lock the customer's `LoyaltyAccount` row
(SELECT … FOR UPDATE), insert the `LedgerEntry`, move the account's sums with F() in the
same transaction. Because every writer of an account takes that lock first, reading the
locked sums to decide a clamp is safe, and the (tenant, customer, kind, source) unique
constraint makes every replay — an event handled twice, a webhook delivered again, a
journey step retried — write nothing more.

Order points:
- `order.paid` earns `floor(total × points_per_unit × tier multiplier)`, pending for the
  program's return window; the entry keeps the rate and the amount it was computed on.
- A refund of R claws back `round(earned × R / amount)` at that stored rate, capped at what
  is left of the order's earn; the refund that completes the order takes all that is left, so
  the clawbacks sum to exactly the earn. Refunds recorded before the earn are applied right
  after it, so the result is the same in any order of events.
- Clawback takes the order's still-pending points first, then the available balance. If the
  points were already spent, the balance never goes negative: the shortfall is recorded as
  `debt` (on the entry and the account) and repaid first from points credited later.
- A cancelled order earns nothing; cancelling a paid order claws back all it earned."""

import datetime as dt
import math
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce

from lifecycle import citus, clock
from lifecycle.errors import Conflict, ServiceError
from lifecycle.models import Customer, Order, Refund, Tenant
from lifecycle.timeline import event_append

from .models import (
    LedgerEntry,
    LoyaltyAccount,
    PendingRelease,
    Program,
    Reward,
    Tier,
)

Kind = LedgerEntry.Kind


# The window tiers qualify over ("spend over a rolling 12 months").
TIER_WINDOW = dt.timedelta(days=365)


# Due pending lots released per transaction: each locks one account briefly.
RELEASE_BATCH = 200


# Accounts per expiry / tier sweep transaction.
SWEEP_BATCH = 500


class InsufficientPoints(Conflict):
    pass


def program_for(tenant: Tenant | int) -> Program | None:
    return Program.objects.for_tenant(tenant).filter(enabled=True).first()


def account_locked(*, tenant: Tenant | int, customer_id: int) -> LoyaltyAccount:
    """The customer's account, created if missing, locked until the transaction ends."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    accounts = LoyaltyAccount.objects.for_tenant(tenant_id)
    account = accounts.select_for_update().filter(customer_id=customer_id).first()
    if account is None:
        LoyaltyAccount.all_tenants.bulk_create(
            [LoyaltyAccount(tenant_id=tenant_id, customer_id=customer_id)], ignore_conflicts=True)
        account = accounts.select_for_update().get(customer_id=customer_id)
    return account


def entry_exists(account: LoyaltyAccount, kind: str, source: str) -> LedgerEntry | None:
    return LedgerEntry.objects.for_tenant(account.tenant_id).filter(
        customer_id=account.customer_id, kind=kind, source=source).first()


def _append(account: LoyaltyAccount, *, kind: str, source: str, reason: str, amount: int, points: int = 0,
            pending: int = 0, debt: int = 0, now: dt.datetime, activity: bool = True, **fields) -> LedgerEntry:
    """Insert one entry and move the locked account's sums by exactly its deltas."""
    entry = entry_build(account, kind=kind, source=source, reason=reason, amount=amount, points=points,
                        pending=pending, debt=debt, now=now, activity=activity, **fields)
    entry.save(force_insert=True)
    changes = {"balance": F("balance") + points, "pending": F("pending") + pending, "debt": F("debt") + debt,
               "lifetime_earned": F("lifetime_earned") + entry_earned(entry)}
    if activity:
        changes["last_activity_at"] = now
    LoyaltyAccount.objects.for_tenant(account.tenant_id).filter(pk=account.pk).update(**changes)
    return entry


def entry_earned(entry: LedgerEntry) -> int:
    """What an entry adds to the account's lifetime_earned."""
    return entry.amount if entry.kind in (Kind.EARN, Kind.CLAWBACK) else 0


def entry_build(account: LoyaltyAccount, *, kind: str, source: str, reason: str, amount: int, points: int = 0,
                pending: int = 0, debt: int = 0, now: dt.datetime, activity: bool = True, **fields) -> LedgerEntry:
    """The unsaved entry `_append` inserts, with the locked account's sums (in memory) moved by its
    deltas: a batch writes many such entries with one INSERT and their sums with one UPDATE."""
    entry = LedgerEntry(
        tenant_id=account.tenant_id, account=account, customer_id=account.customer_id, kind=kind, source=source,
        reason=reason[:200], amount=amount, points=points, pending_points=pending, debt_points=debt,
        created_at=now, **fields)
    if activity:
        account.last_activity_at = now
    account.balance += points
    account.pending += pending
    account.debt += debt
    account.lifetime_earned += entry_earned(entry)
    return entry


def credit_split(account: LoyaltyAccount, points: int) -> tuple[int, int]:
    """(to balance, to debt) for points becoming available: an outstanding debt is repaid first."""
    repay = min(points, account.debt)
    return points - repay, -repay


def debit_split(account: LoyaltyAccount, points: int) -> tuple[int, int]:
    """(from balance, new debt) for points taken back: never below zero, the rest becomes debt."""
    take = min(points, account.balance)
    return -take, points - take


def _credit(account: LoyaltyAccount, *, kind: str, source: str, reason: str, points: int, now: dt.datetime,
            **fields) -> LedgerEntry:
    before = account.balance
    to_balance, to_debt = credit_split(account, points)
    entry = _append(account, kind=kind, source=source, reason=reason, amount=points, points=to_balance, debt=to_debt,
                    now=now, **fields)
    rewards_unlocked(account, before, now)
    return entry


def points_award(*, tenant: Tenant, customer: Customer, points: int, kind: str = Kind.EARN, source: str,
                 reason: str = "") -> LedgerEntry | None:
    """Give (or, with kind="adjust" and negative points, take) available points, once per source.

    For other apps (referrals: advocate points; journeys: an award step) and the store's own
    adjustments. Idempotent: the same (customer, kind, source) again returns None and writes
    nothing. A negative adjustment larger than the balance is refused (nothing owed is invented).
    Locks the customer's account.
    """
    if kind not in (Kind.EARN, Kind.ADJUST):
        raise ServiceError("loyalty.bad_kind", "points_award writes earn or adjust entries")
    if kind == Kind.EARN and points <= 0:
        raise ServiceError("loyalty.bad_points", "earned points must be positive", {"points": ["must be positive"]})
    if not source:
        raise ServiceError("loyalty.no_source", "every movement needs its source", {"source": ["is required"]})
    now = clock.now()
    with transaction.atomic():
        account = account_locked(tenant=tenant, customer_id=customer.pk)
        if entry_exists(account, kind, source):
            return None
        if points >= 0:
            entry = _credit(account, kind=kind, source=source, reason=reason or kind, points=points, now=now)
        else:
            if account.balance < -points:
                raise InsufficientPoints("loyalty.insufficient_points",
                                         f"the balance is {account.balance}, less than {-points}")
            entry = _append(account, kind=kind, source=source, reason=reason or kind, amount=points, points=points,
                            now=now)
        program = program_for(tenant)
        if program is not None:
            tier_refresh(account, program, now)
    return entry


# Every points column (an entry's, an account's sums) is a 32-bit integer.
POINTS_COLUMN_MAX = 2**31 - 1


# What one order can earn: an IDR order of 3 billion at 1 point per unit is a real order that
# must earn (not fail and be set aside with its journeys); it earns this many.
ORDER_POINTS_MAX = 100_000_000


# The entry's `rate` column: numeric(12, 6).
RATE_MAX = Decimal("999999.999999")


def order_rate(program: Program, multiplier: Decimal) -> Decimal:
    """Points per unit, multiplier included, never more than the entry's column holds."""
    return min(program.points_per_unit * multiplier, RATE_MAX)


def points_for(amount: Decimal, rate: Decimal, account: LoyaltyAccount) -> int:
    """floor(amount × rate), bounded: at most ORDER_POINTS_MAX, and never so many that the
    account's sums (balance + pending, lifetime earned) would pass what their columns hold."""
    headroom = POINTS_COLUMN_MAX - max(account.balance + account.pending, account.lifetime_earned, 0)
    return max(0, min(math.floor(amount * rate), ORDER_POINTS_MAX, headroom))


def order_points_earn(*, order: Order) -> LedgerEntry | None:
    """Earn an order's points (pending for the return window), once per order, then apply any
    refunds already recorded. Called for `order.paid`. Idempotent. Locks the customer's account."""
    tenant = order.tenant
    program = program_for(tenant)
    if program is None or order.customer_id is None or order.paid_at is None:
        return None
    now = clock.now()
    with transaction.atomic():
        account = account_locked(tenant=tenant, customer_id=order.customer_id)
        order = Order.objects.for_tenant(tenant).select_related("tenant").get(pk=order.pk)
        if order.cancelled_at is not None or order.currency != tenant.currency:
            return None
        source = f"order:{order.pk}"
        entry = entry_exists(account, Kind.EARN, source)
        if entry is None:
            multiplier = account.tier.multiplier if account.tier_id and account.tier else Decimal("1")
            rate = order_rate(program, multiplier)
            points = points_for(order.total, rate, account)
            if points <= 0:
                return None
            fields = {"order": order, "rate": rate, "base_amount": order.total, "currency": order.currency}
            reason = f"Order {order.number or order.external_id}"
            if program.pending_days:
                release_at = max(order.paid_at, now - dt.timedelta(days=program.pending_days)) + dt.timedelta(
                    days=program.pending_days)
                entry = _append(account, kind=Kind.EARN, source=source, reason=reason, amount=points, pending=points,
                                now=now, available_at=release_at, **fields)
                PendingRelease.objects.for_tenant(tenant).create(tenant=tenant, account=account, entry=entry,
                                                                 release_at=release_at)
            else:
                entry = _credit(account, kind=Kind.EARN, source=source, reason=reason, points=points, now=now,
                                available_at=now, **fields)
            _first_order_bonus(account, program, order, now)
        for refund in Refund.objects.for_tenant(tenant).filter(order=order).order_by("refunded_at", "pk"):
            _clawback_refund(account, entry, order, refund.external_id, refund.amount, now)
        tier_refresh(account, program, now)
    return entry


def _first_order_bonus(account: LoyaltyAccount, program: Program, order: Order, now: dt.datetime) -> None:
    if not program.first_order_bonus:
        return
    earlier = Order.objects.for_tenant(account.tenant_id).filter(
        customer_id=account.customer_id, paid_at__isnull=False, cancelled_at__isnull=True).filter(
        Q(paid_at__lt=order.paid_at) | Q(paid_at=order.paid_at, pk__lt=order.pk)).exists()
    if earlier or entry_exists(account, Kind.EARN, "first_order"):
        return
    _credit(account, kind=Kind.EARN, source="first_order", reason="First order bonus", points=program.first_order_bonus,
            now=now, order=order)


def _order_state(account: LoyaltyAccount, order_id: int) -> dict[str, int]:
    """What is left of an order's earn: clawed back so far, and its points still pending."""
    return LedgerEntry.objects.for_tenant(account.tenant_id).filter(account=account, order_id=order_id).exclude(
        source="first_order").aggregate(
        clawed=Coalesce(Sum("amount", filter=Q(kind=Kind.CLAWBACK)), 0),
        refunded=Coalesce(Sum("base_amount", filter=Q(kind=Kind.CLAWBACK)), Decimal(0)),
        pending=Coalesce(Sum("pending_points"), 0),
    )


def _take_back(account: LoyaltyAccount, *, order: Order, source: str, reason: str, points: int, pending_left: int,
               now: dt.datetime, **fields) -> LedgerEntry:
    from_pending = min(points, pending_left)
    from_balance, debt = debit_split(account, points - from_pending)
    return _append(account, kind=Kind.CLAWBACK, source=source, reason=reason, amount=-points, points=from_balance,
                   pending=-from_pending, debt=debt, now=now, activity=False, order=order, **fields)


def _clawback_refund(account: LoyaltyAccount, earn: LedgerEntry, order: Order, refund_external_id: str,
                     amount: Decimal, now: dt.datetime) -> LedgerEntry | None:
    source = f"refund:{order.pk}:{refund_external_id}"
    if entry_exists(account, Kind.CLAWBACK, source):
        return None
    state = _order_state(account, order.pk)
    left = earn.amount + state["clawed"]  # clawed is negative
    if left <= 0:
        return None
    if state["refunded"] + amount >= earn.base_amount:
        points = left  # the refund that completes the order takes all that is left: no rounding residue
    else:
        points = int((Decimal(earn.amount) * amount / earn.base_amount).quantize(Decimal(1), ROUND_HALF_UP))
        points = min(points, left)
    if points <= 0:
        return None
    entry = _take_back(account, order=order, source=source, reason=f"Refund on order {order.number or order.external_id}",
                       points=points, pending_left=max(0, state["pending"]), now=now, rate=earn.rate,
                       base_amount=amount, currency=order.currency)
    if points == left:
        _bonus_back(account, order, now)
    return entry


def _bonus_back(account: LoyaltyAccount, order: Order, now: dt.datetime) -> None:
    """A first-order bonus goes with its order when the order is fully refunded or cancelled."""
    bonus = LedgerEntry.objects.for_tenant(account.tenant_id).filter(
        account=account, kind=Kind.EARN, source="first_order", order=order).first()
    if bonus is None or entry_exists(account, Kind.CLAWBACK, f"bonus:{bonus.pk}"):
        return
    from_balance, debt = debit_split(account, bonus.amount)
    _append(account, kind=Kind.CLAWBACK, source=f"bonus:{bonus.pk}", reason="First order bonus: order returned",
            amount=-bonus.amount, points=from_balance, debt=debt, now=now, activity=False)


def order_points_refund(*, order: Order, refund_external_id: str) -> LedgerEntry | None:
    """Claw back a refund's share of the order's points (`order.refunded`). Idempotent per refund.
    Nothing when the order has not earned yet: its earn applies the refund when it comes."""
    refund = Refund.objects.for_tenant(order.tenant_id).filter(order=order, external_id=refund_external_id).first()
    if refund is None or order.customer_id is None:
        return None
    now = clock.now()
    with transaction.atomic():
        account = account_locked(tenant=order.tenant_id, customer_id=order.customer_id)
        earn = entry_exists(account, Kind.EARN, f"order:{order.pk}")
        if earn is None:
            return None
        entry = _clawback_refund(account, earn, order, refund.external_id, refund.amount, now)
        program = program_for(order.tenant_id)
        if program is not None:
            tier_refresh(account, program, now)
    return entry


def order_points_cancel(*, order: Order) -> LedgerEntry | None:
    """A cancelled order keeps nothing it earned (`order.cancelled`). Idempotent."""
    if order.customer_id is None:
        return None
    now = clock.now()
    with transaction.atomic():
        account = account_locked(tenant=order.tenant_id, customer_id=order.customer_id)
        earn = entry_exists(account, Kind.EARN, f"order:{order.pk}")
        source = f"cancel:{order.pk}"
        if earn is None or entry_exists(account, Kind.CLAWBACK, source):
            return None
        state = _order_state(account, order.pk)
        left = earn.amount + state["clawed"]
        entry = None
        if left > 0:
            entry = _take_back(account, order=order, source=source,
                               reason=f"Order {order.number or order.external_id} cancelled", points=left,
                               pending_left=max(0, state["pending"]), now=now, rate=earn.rate,
                               base_amount=earn.base_amount - state["refunded"], currency=order.currency)
        _bonus_back(account, order, now)
        program = program_for(order.tenant_id)
        if program is not None:
            tier_refresh(account, program, now)
    return entry


def points_release_due(*, limit: int = RELEASE_BATCH, after_pk: int = 0) -> tuple[int, int]:
    """Release up to `limit` due pending lots, in one short transaction. Returns (taken, last pk).

    Queue rows are claimed with SKIP LOCKED, so sweeps on several workers share the work; each
    lot's account is then locked like any other writer's. What is left pending of the order
    (after clawbacks) becomes available; the queue row goes. Idempotent per order: the release
    entry's source is the earn's.
    """
    now = clock.now()
    with transaction.atomic():
        batch = citus.locked_batch(PendingRelease.all_tenants.select_related("entry")
                                   .filter(release_at__lte=now, pk__gt=after_pk).order_by("pk"), limit)
        for lot in batch:
            account = account_locked(tenant=lot.tenant_id, customer_id=lot.entry.customer_id)
            earn = lot.entry
            if not entry_exists(account, Kind.RELEASE, earn.source):
                remaining = min(_order_state(account, earn.order_id)["pending"] if earn.order_id else earn.pending_points,
                                account.pending)
                if remaining > 0:
                    before = account.balance
                    to_balance, to_debt = credit_split(account, remaining)
                    _append(account, kind=Kind.RELEASE, source=earn.source, reason=f"{earn.reason}: return window over",
                            amount=remaining, points=to_balance, pending=-remaining, debt=to_debt, now=now,
                            activity=False, order_id=earn.order_id)
                    rewards_unlocked(account, before, now)
            PendingRelease.all_tenants.filter(pk=lot.pk).delete()
    return len(batch), (batch[-1].pk if batch else after_pk)


def tier_qualifying(account: LoyaltyAccount, program: Program, now: dt.datetime) -> Decimal:
    """Points earned (net of clawbacks) or money spent (paid, net of refunds) over 12 months.
    Never the current balance: spending points does not cost a tier."""
    since = now - TIER_WINDOW
    if program.tier_basis == Program.TierBasis.SPEND:
        tenant_currency = Tenant.objects.filter(pk=account.tenant_id).values_list("currency", flat=True).first()
        spent = Order.objects.for_tenant(account.tenant_id).filter(
            customer_id=account.customer_id, paid_at__gte=since, cancelled_at__isnull=True,
            currency=tenant_currency).aggregate(v=Coalesce(Sum(F("total") - F("refunded_total")), Decimal(0)))["v"]
        return Decimal(spent)
    earned = LedgerEntry.objects.for_tenant(account.tenant_id).filter(
        account=account, kind__in=[Kind.EARN, Kind.CLAWBACK], created_at__gte=since).aggregate(
        v=Coalesce(Sum("amount"), 0))["v"]
    return Decimal(earned)


def tier_refresh(account: LoyaltyAccount, program: Program, now: dt.datetime) -> Tier | None:
    """Move the locked account to the tier it qualifies for. Upgrades are immediate and emit
    `loyalty.tier_reached`; downgrades happen only under the rolling rule."""
    tiers = list(Tier.objects.for_tenant(account.tenant_id).filter(program=program).order_by("threshold"))
    if not tiers:
        return account.tier
    value = tier_qualifying(account, program, now)
    target = None
    for tier in tiers:
        if value >= tier.threshold:
            target = tier
    current = next((t for t in tiers if t.pk == account.tier_id), None)
    if target == current:
        return current
    upgrade = current is None or (target is not None and target.threshold > current.threshold)
    if not upgrade and program.tier_downgrade == Program.Downgrade.NEVER:
        return current
    LoyaltyAccount.objects.for_tenant(account.tenant_id).filter(pk=account.pk).update(
        tier=target, tier_changed_at=now)
    account.tier, account.tier_changed_at = target, now
    event_type = "loyalty.tier_reached" if upgrade else "loyalty.tier_lost"
    event_append(tenant=Tenant.objects.get(pk=account.tenant_id), type=event_type, occurred_at=now,
                 customer=Customer.objects.for_tenant(account.tenant_id).get(pk=account.customer_id),
                 data={"tier": target.name if target else "", "previous_tier": current.name if current else "",
                       "qualifying": str(value)})
    return target


def tiers_refresh_sweep(*, after_pk: int = 0, limit: int = SWEEP_BATCH) -> tuple[int, int]:
    """Re-qualify tiered accounts (the rolling window moves daily). One short transaction per call."""
    now = clock.now()
    with transaction.atomic():
        batch = citus.locked_batch(LoyaltyAccount.all_tenants.filter(tier__isnull=False, pk__gt=after_pk)
                                   .order_by("pk"), limit)
        programs: dict[int, Program | None] = {}
        for account in batch:
            if account.tenant_id not in programs:
                programs[account.tenant_id] = program_for(account.tenant_id)
            program = programs[account.tenant_id]
            if program is not None and program.tier_downgrade == Program.Downgrade.ROLLING:
                tier_refresh(account, program, now)
    return len(batch), (batch[-1].pk if batch else after_pk)


def rewards_unlocked(account: LoyaltyAccount, before: int, now: dt.datetime) -> None:
    """`loyalty.reward_unlocked` for each reward the balance just reached (a journey can tell them)."""
    if account.balance <= before:
        return
    rewards = Reward.objects.for_tenant(account.tenant_id).filter(
        active=True, program__enabled=True, cost__gt=before, cost__lte=account.balance).order_by("cost")
    customer = None
    for reward in rewards:
        customer = customer or Customer.objects.for_tenant(account.tenant_id).select_related("tenant").get(
            pk=account.customer_id)
        event_append(tenant=customer.tenant, type="loyalty.reward_unlocked", occurred_at=now, customer=customer,
                     data={"reward_id": reward.pk, "reward": reward.name, "cost": reward.cost,
                           "balance": account.balance})


def _months(n: int) -> dt.timedelta:
    return dt.timedelta(days=round(30.44 * n))


def points_expiry_sweep(*, after_pk: int = 0, limit: int = SWEEP_BATCH) -> tuple[int, int]:
    """Warn, then expire, balances left untouched for the program's expiry period.

    `loyalty.points_expiring` goes out `expiry_warning_days` before the deadline (once per
    period of inactivity: keyed by last_activity_at); the points expire at the deadline, but
    never sooner than `expiry_warning_days` after that warning. Activity (earning, redeeming)
    starts a new period. One short transaction per call, accounts claimed with SKIP LOCKED.
    """
    now = clock.now()
    with transaction.atomic():
        batch = citus.locked_batch(LoyaltyAccount.all_tenants
                                   .filter(balance__gt=0, last_activity_at__isnull=False, pk__gt=after_pk)
                                   .select_related("customer__tenant").order_by("pk"), limit, of=("self",))
        programs: dict[int, Program | None] = {}
        for account in batch:
            if account.tenant_id not in programs:
                programs[account.tenant_id] = program_for(account.tenant_id)
            program = programs[account.tenant_id]
            if program is None or not program.expiry_months:
                continue
            deadline = account.last_activity_at + _months(program.expiry_months)
            warning = dt.timedelta(days=program.expiry_warning_days)
            warned = account.expiry_warned_for == account.last_activity_at and account.expiry_warned_at
            if not warned:
                if now >= deadline - warning:
                    LoyaltyAccount.objects.for_tenant(account.tenant_id).filter(pk=account.pk).update(
                        expiry_warned_for=account.last_activity_at, expiry_warned_at=now)
                    expires_at = max(deadline, now + warning)
                    event_append(tenant=account.customer.tenant, type="loyalty.points_expiring", occurred_at=now,
                                 customer=account.customer,
                                 dedupe_key=f"loyalty.points_expiring:{account.pk}:{account.last_activity_at.isoformat()}",
                                 data={"points": account.balance, "expires_at": expires_at.isoformat()})
                continue
            if now >= max(deadline, account.expiry_warned_at + warning):
                source = f"inactive:{account.last_activity_at.isoformat()}"
                if not entry_exists(account, Kind.EXPIRE, source):
                    _append(account, kind=Kind.EXPIRE, source=source, reason="Points expired after inactivity",
                            amount=-account.balance, points=-account.balance, now=now, activity=False)
    return len(batch), (batch[-1].pk if batch else after_pk)


def account_birthday_set(*, tenant: Tenant, customer: Customer, birthday: dt.date) -> bool:
    """Record the customer's birthday, once: a birthday already given is not changed from the page
    (moving it to today would earn the bonus on demand). Returns whether it was set."""
    if birthday > clock.now().date() or birthday.year < 1900:
        raise ServiceError("loyalty.bad_birthday", "that is not a birthday", {"birthday": ["is not a past date"]})
    with transaction.atomic():
        account = account_locked(tenant=tenant, customer_id=customer.pk)
        if account.birthday is not None:
            return False
        return bool(LoyaltyAccount.objects.for_tenant(tenant).filter(pk=account.pk, birthday__isnull=True).update(
            birthday=birthday))


def birthday_bonus_sweep(*, after_pk: int = 0, limit: int = SWEEP_BATCH) -> tuple[int, int]:
    """Award the birthday bonus to accounts whose birthday is today (UTC; 29 February counts on
    28 February in other years), once per year: the entry's source is `birthday:<year>`."""
    now = clock.now()
    today = now.date()
    days = [today.day] + ([29] if (today.month, today.day) == (2, 28) and not _leap(today.year) else [])
    programs = Program.all_tenants.filter(enabled=True, birthday_bonus__gt=0)
    bonus = dict(programs.values_list("tenant_id", "birthday_bonus"))
    if not bonus:
        return 0, after_pk
    with transaction.atomic():
        batch = citus.locked_batch(LoyaltyAccount.all_tenants.filter(
            tenant_id__in=list(bonus), birthday__month=today.month, birthday__day__in=days, pk__gt=after_pk)
            .order_by("pk"), limit)
        for account in batch:
            source = f"birthday:{today.year}"
            if not entry_exists(account, Kind.EARN, source):
                _credit(account, kind=Kind.EARN, source=source, reason="Happy birthday!",
                        points=bonus[account.tenant_id], now=now)
    return len(batch), (batch[-1].pk if batch else after_pk)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def loyalty_customer_erase(*, tenant_id: int, customer_id: int) -> None:
    """An erased customer can no longer spend: their balance and pending points are forfeited
    (the ledger stays, as the store's liability record, tied to the anonymized customer)."""
    now = clock.now()
    with transaction.atomic():
        account = LoyaltyAccount.objects.for_tenant(tenant_id).select_for_update().filter(
            customer_id=customer_id).first()
        if account is None or entry_exists(account, Kind.ADJUST, "erased"):
            return
        pending_orders = (LedgerEntry.objects.for_tenant(tenant_id).filter(account=account, order__isnull=False)
                          .values("order_id").annotate(p=Sum("pending_points")).filter(p__gt=0))
        for row in pending_orders:
            _append(account, kind=Kind.ADJUST, source=f"erased:order:{row['order_id']}", reason="Customer erased",
                    amount=-row["p"], pending=-row["p"], now=now, activity=False, order_id=row["order_id"])
        _append(account, kind=Kind.ADJUST, source="erased", reason="Customer erased", amount=-account.balance,
                points=-account.balance, debt=-account.debt, now=now, activity=False)
