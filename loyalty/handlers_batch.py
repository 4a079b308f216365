"""Loyalty's batch reaction: one tenant's events, each customer at most once (lifecycle/events.py
says when), leaving the ledger as `handlers.on_event` called on each event in turn would.

The two kinds that make up the traffic are handled for the whole batch with a few statements:
an order's points on `order.paid`, and the store's per-event bonuses (a survey answer, a support
contact…). Their accounts are locked with one statement, the entries that exist already read with
one, the new entries built in memory by the same rules as services (`entry_build`, `credit_split`,
`points_for`) and written with one INSERT, the accounts' sums with one UPDATE, the tiers
re-qualified from one aggregate. Anything rarer (an order paid after a refund was recorded, a
replay, a refund, a cancellation, an erasure, a review) goes through the per-event reaction, in
the same transaction. The ledger's unique (customer, kind, source) stays the idempotency guard:
a batch that meets it fails whole, and the sweep handles its events one by one."""

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce

from lifecycle import clock
from lifecycle.bulk_updates import values_update
from lifecycle.events import reaction, sweep_memo
from lifecycle.models import Event, Order, Refund
from lifecycle.rows import Table
from lifecycle.timeline import event_append

from . import handlers, services
from .models import LedgerEntry, LoyaltyAccount, PendingRelease, Program, Reward, Tier

Kind = LedgerEntry.Kind


def _bonus_points(program: Program | None, event: Event) -> int:
    """The store's bonus for this event (what `handlers.on_event` awards last), 0 for none."""
    if program is None or not event.customer_id or event.type.startswith(("order.", "customer.", "loyalty.")):
        return 0
    return int((program.event_bonuses or {}).get(event.type) or 0)


# Kinds the batch leaves to the per-event reaction: rare, and each reads much of the account's ledger.
PER_EVENT = ("order.refunded", "order.cancelled", "customer.erased", "review.approved")


@reaction("loyalty", batch=True)
def on_events(events: Sequence[Event]) -> None:
    """`handlers.on_event` for many events of one tenant, each customer at most once."""
    if not events:
        return
    tenant_id = events[0].tenant_id
    program = sweep_memo(("loyalty.program", tenant_id), lambda: services.program_for(tenant_id))
    earning = [e for e in events if e.type == "order.paid" and e.order_id and program is not None
               and e.order.customer_id is not None and e.order.paid_at is not None]
    bonus = [e for e in events if e.type not in PER_EVENT and _bonus_points(program, e) > 0]
    settled = _refunds_settled(tenant_id, [e for e in events if e.type == "order.refunded"]) if program else []
    left = {e.pk for e in events if e.type in PER_EVENT} - {e.pk for e in settled}
    if earning or bonus or settled:
        owners = [e.order.customer_id for e in earning + settled] + [e.customer_id for e in bonus]
        if len(set(owners)) != len(owners):
            raise ValueError("two events of one batch move one account")  # the sweep goes one by one
        ledger = _Ledger(tenant_id, program, customers=set(owners))
        ledger.earn_orders(earning)
        ledger.award_bonuses(bonus)
        ledger.checked = [ledger.accounts[e.order.customer_id] for e in settled]
        ledger.write()
        left |= ledger.by_event
    for event in events:
        if event.pk in left:
            handlers.on_event(event)


def _refunds_settled(tenant_id: int, events: Sequence[Event]) -> list[Event]:
    """Refund events whose clawback is written already (the order's earn applied the refund it
    found recorded): for them `services.order_points_refund` writes nothing and only re-qualifies
    the account's tier. Told apart with one read of the ledger."""
    candidates = [e for e in events if e.order_id and e.order.customer_id is not None
                  and (e.data or {}).get("refund_external_id")]
    if not candidates:
        return []
    sources = {f"refund:{e.order_id}:{e.data['refund_external_id']}" for e in candidates}
    sources |= {f"order:{e.order_id}" for e in candidates}
    written = set(LedgerEntry.objects.for_tenant(tenant_id).filter(
        customer_id__in={e.order.customer_id for e in candidates}, source__in=sources,
        kind__in=[Kind.EARN, Kind.CLAWBACK]).values_list("customer_id", "source"))
    return [e for e in candidates if (e.order.customer_id, f"order:{e.order_id}") in written
            and (e.order.customer_id, f"refund:{e.order_id}:{e.data['refund_external_id']}") in written]


@dataclasses.dataclass
class _Ledger:
    tenant_id: int
    program: Program
    customers: set[int]

    def __post_init__(self) -> None:
        self.now = clock.now()
        self.accounts = self._lock_accounts()
        self.tiers = sweep_memo(("loyalty.tiers", self.tenant_id), lambda: list(
            Tier.objects.for_tenant(self.tenant_id).filter(program=self.program).order_by("threshold")))
        tier_ids = {a.tier_id for a in self.accounts.values() if a.tier_id} - {t.pk for t in self.tiers}
        self.multipliers = {t.pk: t.multiplier for t in self.tiers}
        if tier_ids:
            self.multipliers.update(Tier.objects.for_tenant(self.tenant_id).filter(pk__in=tier_ids).values_list(
                "pk", "multiplier"))
        self.entries: list[LedgerEntry] = []
        self.activity: set[int] = set()
        self.credits: list[tuple[LoyaltyAccount, int, int]] = []  # (account, balance before, after) per credit
        self.touched: dict[int, LoyaltyAccount] = {}  # by id, in the order first moved
        self.releases: list[tuple[LedgerEntry, dt.datetime]] = []
        self.by_event: set[int] = set()  # events left to the per-event reaction
        self.checked: list[LoyaltyAccount] = []  # accounts only re-qualified for their tier

    def _lock_accounts(self) -> dict[int, LoyaltyAccount]:
        """Every customer's account, created if missing, locked (as `services.account_locked`)."""
        accounts = LoyaltyAccount.objects.for_tenant(self.tenant_id)
        locked = {a.customer_id: a for a in accounts.select_for_update().filter(
            customer_id__in=self.customers).order_by("pk")}
        missing = self.customers - set(locked)
        if missing:
            LoyaltyAccount.all_tenants.bulk_create(
                [LoyaltyAccount(tenant_id=self.tenant_id, customer_id=c) for c in sorted(missing)],
                ignore_conflicts=True)
            locked.update({a.customer_id: a for a in accounts.select_for_update().filter(
                customer_id__in=missing).order_by("pk")})
        return locked

    def _append(self, account: LoyaltyAccount, *, activity: bool = True, **fields) -> LedgerEntry:
        entry = services.entry_build(account, activity=activity, now=self.now, **fields)
        self.entries.append(entry)
        if activity:
            self.activity.add(account.pk)
        self.touched.setdefault(account.pk, account)
        return entry

    def _credit(self, account: LoyaltyAccount, *, points: int, **fields) -> LedgerEntry:
        before = account.balance
        to_balance, to_debt = services.credit_split(account, points)
        entry = self._append(account, amount=points, points=to_balance, debt=to_debt, **fields)
        if account.balance > before:
            self.credits.append((account, before, account.balance))
        return entry

    def earn_orders(self, events: Sequence[Event]) -> None:
        """`services.order_points_earn` for orders earning for the first time with no refund
        recorded yet; the others are left to the per-event reaction (`by_event`)."""
        if not events:
            return
        order_ids = [e.order_id for e in events]
        orders = {o.pk: o for o in Order.objects.for_tenant(self.tenant_id).select_related("tenant").filter(
            pk__in=order_ids)}
        refunds: dict[int, list[Refund]] = {}
        for refund in Refund.objects.for_tenant(self.tenant_id).filter(order_id__in=order_ids).order_by(
                "refunded_at", "pk"):
            refunds.setdefault(refund.order_id, []).append(refund)
        sources = [f"order:{pk}" for pk in order_ids] + ["first_order"]
        existing = set(LedgerEntry.objects.for_tenant(self.tenant_id).filter(
            customer_id__in=self.customers, kind=Kind.EARN, source__in=sources).values_list("customer_id", "source"))
        first_orders = dict(Order.objects.for_tenant(self.tenant_id).filter(
            customer_id__in={orders[pk].customer_id for pk in order_ids if pk in orders}, paid_at__isnull=False,
            cancelled_at__isnull=True).order_by("customer_id", "paid_at", "pk").distinct("customer_id").values_list(
            "customer_id", "pk"))
        for event in events:
            order = orders.get(event.order_id)
            first = (first_orders.get(order.customer_id) == order.pk and self.program.first_order_bonus > 0
                     and (order.customer_id, "first_order") not in existing) if order is not None else False
            # A refund of a first order may take its bonus back, whose source names the bonus's id.
            if order is None or (order.customer_id, f"order:{order.pk}") in existing or (first and order.pk in refunds):
                self.by_event.add(event.pk)
                continue
            account = self.accounts[order.customer_id]
            if order.cancelled_at is not None or order.currency != order.tenant.currency:
                continue
            self._earn(account, order, first=first, refunds=refunds.get(order.pk, []))

    def _earn(self, account: LoyaltyAccount, order: Order, *, first: bool, refunds: Sequence[Refund]) -> None:
        multiplier = self.multipliers.get(account.tier_id, Decimal("1")) if account.tier_id else Decimal("1")
        rate = services.order_rate(self.program, multiplier)
        points = services.points_for(order.total, rate, account)
        if points <= 0:
            return
        fields = {"order": order, "rate": rate, "base_amount": order.total, "currency": order.currency,
                  "source": f"order:{order.pk}", "reason": f"Order {order.number or order.external_id}",
                  "kind": Kind.EARN}
        pending_days = self.program.pending_days
        if pending_days:
            release_at = max(order.paid_at, self.now - dt.timedelta(days=pending_days)) + dt.timedelta(
                days=pending_days)
            entry = self._append(account, amount=points, pending=points, available_at=release_at, **fields)
            self.releases.append((entry, release_at))
        else:
            entry = self._credit(account, points=points, available_at=self.now, **fields)
        if first:
            self._credit(account, kind=Kind.EARN, source="first_order", reason="First order bonus",
                         points=self.program.first_order_bonus, order=order)
        self._clawbacks(account, entry, order, refunds)

    def _clawbacks(self, account: LoyaltyAccount, earn: LedgerEntry, order: Order, refunds: Sequence[Refund]) -> None:
        """The refunds recorded before the order earned, applied right after its earn as
        `services._clawback_refund` does; the order's state (clawed, refunded, pending) is known
        here, the earn being new. No first-order bonus rides on the order (see `earn_orders`)."""
        clawed, refunded, pending = 0, Decimal(0), earn.pending_points
        for refund in refunds:
            left = earn.amount + clawed
            if left <= 0:
                continue
            if refunded + refund.amount >= earn.base_amount:
                points = left
            else:
                share = (Decimal(earn.amount) * refund.amount / earn.base_amount).quantize(Decimal(1), ROUND_HALF_UP)
                points = min(int(share), left)
            if points <= 0:
                continue
            from_pending = min(points, max(0, pending))
            from_balance, debt = services.debit_split(account, points - from_pending)
            self._append(account, kind=Kind.CLAWBACK, source=f"refund:{order.pk}:{refund.external_id}",
                         reason=f"Refund on order {order.number or order.external_id}", amount=-points,
                         points=from_balance, pending=-from_pending, debt=debt, activity=False, order=order,
                         rate=earn.rate, base_amount=refund.amount, currency=order.currency)
            clawed, refunded, pending = clawed - points, refunded + refund.amount, pending - from_pending

    def award_bonuses(self, events: Sequence[Event]) -> None:
        """`services.points_award` of each event's bonus, once per event (source event:<id>)."""
        if not events:
            return
        existing = set(LedgerEntry.objects.for_tenant(self.tenant_id).filter(
            customer_id__in={e.customer_id for e in events}, kind=Kind.EARN,
            source__in=[f"event:{e.pk}" for e in events]).values_list("source", flat=True))
        for event in events:
            if f"event:{event.pk}" not in existing:
                self._credit(self.accounts[event.customer_id], kind=Kind.EARN, source=f"event:{event.pk}",
                             reason=event.type, points=_bonus_points(self.program, event))

    def write(self) -> None:
        """The entries (one INSERT), the pending lots, the accounts' sums (one UPDATE), then what
        services does after each movement: rewards unlocked, tiers re-qualified."""
        if not self.entries:
            self._tiers_refresh()
            return
        _entries().insert(self.entries)
        PendingRelease.objects.for_tenant(self.tenant_id).bulk_create([
            PendingRelease(tenant_id=self.tenant_id, account=entry.account, entry=entry, release_at=release_at)
            for entry, release_at in self.releases])
        sums: dict[int, list[int]] = {pk: [0, 0, 0, 0] for pk in self.touched}
        for entry in self.entries:
            row = sums[entry.account.pk]
            row[0] += entry.points
            row[1] += entry.pending_points
            row[2] += entry.debt_points
            row[3] += services.entry_earned(entry)
        values_update(
            LoyaltyAccount, tenant_id=self.tenant_id,
            rows=[(pk, *row, pk in self.activity) for pk, row in sums.items()],
            columns=[("id", "bigint"), ("b", "integer"), ("p", "integer"), ("d", "integer"), ("e", "integer"),
                     ("act", "boolean")],
            set_sql="balance = t.balance + v.b, pending = t.pending + v.p, debt = t.debt + v.d, "
                    "lifetime_earned = t.lifetime_earned + v.e, "
                    "last_activity_at = CASE WHEN v.act THEN %s ELSE t.last_activity_at END",
            params=[self.now])
        self._rewards_unlocked()
        self._tiers_refresh()

    def _rewards_unlocked(self) -> None:
        """`services.rewards_unlocked` after every credit that raised a balance, from one read."""
        if not self.credits:
            return
        rewards = sweep_memo(("loyalty.rewards", self.tenant_id), lambda: list(
            Reward.objects.for_tenant(self.tenant_id).filter(active=True, program__enabled=True).order_by("cost", "pk")))
        for account, before, after in self.credits:
            for reward in [r for r in rewards if before < r.cost <= after]:
                customer = account.customer
                event_append(tenant=customer.tenant, type="loyalty.reward_unlocked", occurred_at=self.now,
                             customer=customer, data={"reward_id": reward.pk, "reward": reward.name,
                                                      "cost": reward.cost, "balance": after})

    def _tiers_refresh(self) -> None:
        """`services.tier_refresh` for the accounts whose tier would change, found with one
        aggregate of what each qualifies with."""
        accounts = [*self.touched.values(), *(a for a in self.checked if a.pk not in self.touched)]
        if not self.tiers or not accounts:
            return
        values = tiers_qualifying(self.tenant_id, self.program, accounts, self.now)
        for account in accounts:
            target = None
            for tier in self.tiers:
                if values.get(account.pk, Decimal(0)) >= tier.threshold:
                    target = tier
            if (target.pk if target else None) != account.tier_id:
                services.tier_refresh(account, self.program, self.now)


@functools.cache
def _entries() -> Table:
    """Hand-written multi-row INSERTs (lifecycle/rows.py): less Python per row than bulk_create."""
    return Table(LedgerEntry)


def tiers_qualifying(tenant_id: int, program: Program, accounts: Sequence[LoyaltyAccount],
                     now: dt.datetime) -> dict[int, Decimal]:
    """`services.tier_qualifying` of many accounts (by account id) in one query."""
    since = now - services.TIER_WINDOW
    if program.tier_basis == Program.TierBasis.SPEND:
        currency = accounts[0].tenant.currency if accounts else ""
        by_customer = dict(Order.objects.for_tenant(tenant_id).filter(
            customer_id__in=[a.customer_id for a in accounts], paid_at__gte=since, cancelled_at__isnull=True,
            currency=currency).values("customer_id").annotate(
            v=Coalesce(Sum(F("total") - F("refunded_total")), Decimal(0))).values_list("customer_id", "v"))
        return {a.pk: Decimal(by_customer.get(a.customer_id, 0)) for a in accounts}
    by_account = dict(LedgerEntry.objects.for_tenant(tenant_id).filter(
        Q(kind=Kind.EARN) | Q(kind=Kind.CLAWBACK), account_id__in=[a.pk for a in accounts],
        created_at__gte=since).values("account_id").annotate(v=Coalesce(Sum("amount"), 0)).values_list(
        "account_id", "v"))
    return {a.pk: Decimal(by_account.get(a.pk, 0)) for a in accounts}
