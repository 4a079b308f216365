"""Every referral write: codes, clicks, attribution, review decisions, release, rewards.

Idempotency is the database's: one Referral per (tenant, order), one live Referral per
friend, one Reward per (referral, side), and every state move is a conditional UPDATE
(`… WHERE state = 'converted'`), so a replayed event or a second worker changes nothing.
"""

import dataclasses
import datetime as dt
import logging
import re
import secrets
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from django.db import IntegrityError, transaction
from django.db.models import F, Q

from lifecycle import citus, clock
from lifecycle.errors import NotFound, ServiceError
from lifecycle.locks import advisory_lock
from lifecycle.models import Customer, Order, Tenant
from lifecycle.money import money_str
from lifecycle.timeline import event_append

from . import fraud, rewards
from .models import VELOCITY_WINDOW, Click, Invite, Program, Referral, ReferralCode, Reward, RewardKind

logger = logging.getLogger(__name__)

# Unambiguous when read aloud or copied by hand: no 0/O, 1/I/L.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_SUFFIX_LENGTH = 4
VANITY_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,31}$")
# Clicks recorded per IP hash per hour and tenant; beyond it a click is not recorded (the redirect still works).
CLICKS_PER_IP_PER_HOUR = 30
# Referrals per release transaction: each writes a few rows; short enough to hold locks briefly.
RELEASE_BATCH = 100
REWARD_MAX_ATTEMPTS = 6
# A reward claimed for sending and not finished within this is handed out again.
REWARD_SEND_LEASE = dt.timedelta(minutes=5)


def normalize_code(value: str) -> str:
    return (value or "").strip().upper()[:32]


# --- codes and clicks -----------------------------------------------------------


def _readable_prefix(customer: Customer) -> str:
    name = re.sub(r"[^A-Z]", "", (customer.first_name or "").upper())
    return (name[:8] or "FRIEND") + "-"


def referral_code_ensure(*, tenant: Tenant, customer: Customer) -> ReferralCode:
    """The customer's code, created on first need (ADA-7K3P). Idempotent per customer."""
    codes = ReferralCode.objects.for_tenant(tenant)
    found = codes.filter(customer=customer, vanity=False).first()
    if found:
        return found
    for _ in range(8):
        code = _readable_prefix(customer) + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_SUFFIX_LENGTH))
        try:
            with transaction.atomic():
                return codes.create(tenant=tenant, customer=customer, code=code)
        except IntegrityError:
            found = codes.filter(customer=customer, vanity=False).first()
            if found:  # a concurrent caller created it
                return found
    raise ServiceError("referrals.code_space", "could not find a free referral code; try again")


def referral_code_add_vanity(*, tenant: Tenant, customer: Customer, code: str) -> ReferralCode:
    """A code the store chose (ADA, COFFEE-ADA). Unique per store, case-insensitive."""
    code = normalize_code(code)
    if not VANITY_CODE.match(code) or code == "METRICS":  # /api/v1/referrals/metrics is the metrics route
        raise ServiceError("referrals.bad_code", "a code is 3 to 32 letters, digits or dashes",
                           {"code": ["must be 3 to 32 letters, digits or dashes"]})
    try:
        with transaction.atomic():
            return ReferralCode.objects.for_tenant(tenant).create(tenant=tenant, customer=customer, code=code,
                                                                  vanity=True)
    except IntegrityError:
        raise ServiceError("referrals.code_taken", f"the code {code} is taken") from None


def click_record(*, code: ReferralCode, ip: str, user_agent: str, by_advocate: bool = False) -> Click | None:
    """One click on a referral link, if it looks like a person and its IP is not flooding us.

    Never attributes anything and never rewards: a click row only. Returns None when filtered.
    """
    if fraud.is_bot(user_agent):
        return None
    now = clock.now()
    ip_hash = fraud.ip_hash(ip)
    recent = Click.objects.for_tenant(code.tenant_id).filter(ip_hash=ip_hash, at__gt=now - dt.timedelta(hours=1))
    if recent.count() >= CLICKS_PER_IP_PER_HOUR:
        return None
    return Click.objects.for_tenant(code.tenant_id).create(
        tenant_id=code.tenant_id, code=code, at=now, ip_hash=ip_hash,
        device_hash=fraud.device_hash(ip, user_agent), by_advocate=by_advocate)


def invite_record(*, tenant: Tenant, customer: Customer, delivery_id: int) -> ReferralCode | None:
    """A journey's referral-invite email is about to go out: make sure the customer has a code,
    count the invite (once per delivery). None when the store has no active program."""
    program = Program.objects.for_tenant(tenant).filter(active=True).first()
    if program is None:
        return None
    code = referral_code_ensure(tenant=tenant, customer=customer)
    Invite.objects.for_tenant(tenant).get_or_create(tenant=tenant, delivery_id=delivery_id,
                                                    defaults={"customer": customer, "created_at": clock.now()})
    return code


def referrals_customer_erase(*, tenant_id: int, customer_id: int) -> int:
    """customer.erased: generated codes start with the first name, so each of the customer's codes is
    renamed to a random one and disabled (its links stop working). Idempotent."""
    codes = (ReferralCode.objects.for_tenant(tenant_id).filter(customer_id=customer_id)
             .exclude(code__startswith="ERASED-"))
    renamed = 0
    for code in codes:
        code.code = "ERASED-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
        code.disabled_at = code.disabled_at or clock.now()
        code.save(update_fields=["code", "disabled_at"])
        renamed += 1
    return renamed


# --- attribution ----------------------------------------------------------------


def _ref_param(landing_site: str) -> str:
    try:
        query = parse_qs(urlsplit(landing_site).query)
    except ValueError:
        return ""
    values = query.get("ref") or query.get("referral_code") or []
    return values[0] if values else ""


def order_codes(order: Order) -> list[tuple[str, str]]:
    """(code, carrier) candidates an order carries, in the order we trust them."""
    found = []
    if order.referral_code:
        carrier = (Referral.Carrier.API_FIELD if order.source in (Order.Source.API, Order.Source.IMPORT)
                   else Referral.Carrier.NOTE_ATTRIBUTE)
        found.append((normalize_code(order.referral_code), carrier))
    found += [(normalize_code(code), Referral.Carrier.DISCOUNT_CODE) for code in order.discount_codes or []]
    ref = _ref_param(order.landing_site)
    if ref:
        found.append((normalize_code(ref), Referral.Carrier.LANDING_SITE))
    return [(code, carrier) for code, carrier in found if code]


@dataclasses.dataclass
class Verdict:
    state: str
    reason: str = ""
    flags: list[dict] = dataclasses.field(default_factory=list)

    def flag(self, rule: str, reason: str) -> None:
        self.flags.append({"rule": rule, "reason": reason})


def _net(order: Order) -> Decimal:
    return order.total - order.refunded_total


def _checks(program: Program, code: ReferralCode, order: Order, friend: Customer, now: dt.datetime) -> Verdict:
    verdict = Verdict(state=Referral.State.CONVERTED)
    advocate = code.customer
    if friend.pk == advocate.pk:
        verdict.flag("self_referral_customer", "the friend is the advocate (same customer)")
        return dataclasses.replace(verdict, state=Referral.State.REJECTED, reason="self-referral: same customer")
    earlier = (Order.objects.for_tenant(order.tenant_id).filter(customer=friend, paid_at__isnull=False)
               .exclude(pk=order.pk).filter(Q(placed_at__lt=order.placed_at) | Q(paid_at__lt=order.paid_at)).count())
    if program.new_customers_only and earlier:
        verdict.flag("friend_not_new", f"the friend had {earlier} paid order(s) before this one")
        return dataclasses.replace(verdict, state=Referral.State.REJECTED, reason="friend is not a new customer")
    live = Referral.objects.for_tenant(order.tenant_id).filter(friend=friend).exclude(state=Referral.State.REJECTED)
    if live.exists():
        return dataclasses.replace(verdict, state=Referral.State.REJECTED, reason="friend was already referred")
    if order.currency != program.currency:
        return dataclasses.replace(verdict, state=Referral.State.REJECTED,
                                   reason=f"order in {order.currency}, the program pays in {program.currency}")
    if _net(order) < program.min_order_total or _net(order) <= 0:
        return dataclasses.replace(verdict, state=Referral.State.REJECTED,
                                   reason=f"order total {money_str(_net(order), order.currency)} is below the "
                                          f"minimum {money_str(program.min_order_total, program.currency)}")
    # Suspicious, not certain: these wait for a person (or the deadline's auto-decision).
    if friend.email and advocate.email and fraud.normalize_email(friend.email) == fraud.normalize_email(advocate.email):
        verdict.flag("self_referral_email", "same email address after removing +tags and Gmail dots")
    clicks = Click.objects.for_tenant(order.tenant_id).filter(code=code)
    friend_click = clicks.filter(by_advocate=False, at__lte=order.paid_at or now).order_by("-at").first()
    if friend_click:
        own = clicks.filter(by_advocate=True)
        if own.filter(device_hash=friend_click.device_hash).exists():
            verdict.flag("self_referral_device", "the friend's click came from the advocate's own device")
        elif own.filter(ip_hash=friend_click.ip_hash).exists():
            verdict.flag("self_referral_ip", "the friend's click came from the advocate's IP address")
        per_ip = clicks.filter(ip_hash=friend_click.ip_hash, at__gt=friend_click.at - VELOCITY_WINDOW).count()
        if per_ip > program.max_clicks_per_ip_per_day:
            verdict.flag("velocity_clicks_ip", f"{per_ip} clicks on this code from one IP address within a day")
    conversions = (Referral.objects.for_tenant(order.tenant_id)
                   .filter(advocate=advocate, converted_at__gt=now - VELOCITY_WINDOW)
                   .exclude(state=Referral.State.REJECTED).count())
    if conversions >= program.max_conversions_per_advocate_per_day:
        verdict.flag("velocity_conversions_advocate",
                     f"{conversions + 1} referred orders for this advocate within a day")
    if verdict.flags:
        verdict.state = Referral.State.REVIEW
        verdict.reason = "waiting for review: " + ", ".join(f["rule"] for f in verdict.flags)
    return verdict


def _converted_event(referral: Referral) -> None:
    program = Program.objects.for_tenant(referral.tenant_id).get()
    event_append(
        tenant=referral.tenant, type="referral.converted", occurred_at=clock.now(), customer=referral.advocate,
        order=referral.order, dedupe_key=f"referral.converted:{referral.pk}",
        data={"referral_id": referral.pk, "code": referral.code.code, "friend_first_name": referral.friend.first_name,
              "reward_unlocks_on": referral.release_at.date().isoformat(),
              "reward_kind": program.advocate_reward_kind, "currency": program.currency},
    )


def referral_attribute(*, tenant: Tenant, order: Order) -> Referral | None:
    """Link a paid order that carries a code to its referral, with every fraud check's verdict.

    Idempotent: one Referral per order (a replay finds it). Locks the friend for the
    transaction, so two orders of one new friend cannot both convert.
    """
    program = Program.objects.for_tenant(tenant).filter(active=True).first()
    if program is None or order.customer_id is None or order.paid_at is None:
        return None
    candidates = order_codes(order)
    if not candidates:
        return None
    known = {c.code: c for c in ReferralCode.objects.for_tenant(tenant).select_related("customer")
             .filter(code__in=[code for code, _ in candidates], disabled_at__isnull=True)}
    match = next(((known[code], carrier) for code, carrier in candidates if code in known), None)
    if match is None:
        return None
    code, carrier = match
    with transaction.atomic():
        advisory_lock(tenant.pk, "referral-friend", str(order.customer_id))
        existing = Referral.objects.for_tenant(tenant).filter(order=order).first()
        if existing:
            return existing
        now = clock.now()
        friend = Customer.objects.for_tenant(tenant).get(pk=order.customer_id)
        verdict = _checks(program, code, order, friend, now)
        paid_at = order.paid_at
        # Counted from payment: a late event handler does not push the release out.
        referral = Referral.objects.for_tenant(tenant).create(
            tenant=tenant, code=code, advocate=code.customer, friend=friend, order=order, carrier=carrier,
            state=verdict.state, reason=verdict.reason, flags=verdict.flags, order_total=order.total,
            currency=order.currency, converted_at=now,
            release_at=paid_at + dt.timedelta(days=program.release_delay_days),
            review_deadline=now + dt.timedelta(hours=program.review_deadline_hours)
            if verdict.state == Referral.State.REVIEW else None,
            rejected_at=now if verdict.state == Referral.State.REJECTED else None,
        )
        if verdict.state == Referral.State.CONVERTED:
            _converted_event(referral)
        elif verdict.state == Referral.State.REJECTED:
            _rejected_event(referral)
    return referral


def _rejected_event(referral: Referral) -> None:
    event_append(tenant=referral.tenant, type="referral.rejected", occurred_at=clock.now(),
                 customer=referral.advocate, order=referral.order, dedupe_key=f"referral.rejected:{referral.pk}",
                 data={"referral_id": referral.pk, "code": referral.code.code, "reason": referral.reason})


def referral_reject_for_order(*, tenant: Tenant, order: Order, reason: str) -> bool:
    """A refund or a cancellation before the release: the referral pays nothing. After the
    release it is left alone (rewards are not clawed back). Idempotent."""
    with transaction.atomic():
        referral = Referral.objects.for_tenant(tenant).select_related("code", "advocate", "order").filter(
            order=order).first()
        if referral is None:
            return False
        updated = Referral.objects.for_tenant(tenant).filter(
            pk=referral.pk, state__in=[Referral.State.REVIEW, Referral.State.CONVERTED]).update(
            state=Referral.State.REJECTED, reason=reason[:300], rejected_at=clock.now())
        if updated:
            referral.reason = reason[:300]
            _rejected_event(referral)
    return bool(updated)


def order_refunded(*, tenant: Tenant, order: Order) -> bool:
    program = Program.objects.for_tenant(tenant).first()
    minimum = program.min_order_total if program else Decimal("0")
    net = _net(order)
    if net > 0 and net >= minimum:
        return False  # a partial refund that leaves a qualifying order
    return referral_reject_for_order(
        tenant=tenant, order=order,
        reason=f"order refunded before the reward was released "
               f"({money_str(order.refunded_total, order.currency)} of {money_str(order.total, order.currency)} "
               f"{order.currency})")


# --- review ---------------------------------------------------------------------


def referral_decide(*, referral_id: int, tenant: Tenant | int, approve: bool, by: str, reason: str = "") -> bool:
    """Approve (→ converted, released after the delay) or reject a referral waiting for review.
    False when it was no longer waiting (decided already, or refunded meanwhile)."""
    now = clock.now()
    with transaction.atomic():
        referrals = Referral.objects.for_tenant(tenant)
        if approve:
            updated = referrals.filter(pk=referral_id, state=Referral.State.REVIEW).update(
                state=Referral.State.CONVERTED, decided_by=by, decided_at=now,
                reason=("approved: " + reason) if reason else "approved on review")
        else:
            updated = referrals.filter(pk=referral_id, state=Referral.State.REVIEW).update(
                state=Referral.State.REJECTED, decided_by=by, decided_at=now, rejected_at=now,
                reason=(reason or "rejected on review")[:300])
        if updated:
            referral = referrals.select_related("code", "advocate", "friend", "order", "tenant").get(pk=referral_id)
            (_converted_event if approve else _rejected_event)(referral)
    return bool(updated)


def referrals_auto_decide_due(*, limit: int = RELEASE_BATCH) -> int:
    """Referrals whose review deadline passed get the program's auto-decision."""
    now = clock.now()
    due = list(Referral.all_tenants.filter(state=Referral.State.REVIEW, review_deadline__lte=now)
               .values_list("pk", "tenant_id")[:limit])
    decided = 0
    for pk, tenant_id in due:
        program = Program.objects.for_tenant(tenant_id).get()
        approve = program.review_auto_decision == Program.AutoDecision.APPROVE
        decided += referral_decide(referral_id=pk, tenant=tenant_id, approve=approve, by="auto",
                                   reason="" if approve else "review deadline passed: rejected automatically")
    return decided


# --- release and rewards --------------------------------------------------------


def _reward_code(prefix: str) -> str:
    return prefix + "-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


def _rewards_for(referral: Referral, program: Program, now: dt.datetime) -> list[Reward]:
    base = {"tenant_id": referral.tenant_id, "referral": referral, "currency": program.currency, "created_at": now,
            "next_attempt_at": now}
    rewarded = Referral.objects.for_tenant(referral.tenant_id).filter(advocate=referral.advocate,
                                                                      state=Referral.State.REWARDED)
    nth = rewarded.filter(rewarded_at__lte=now).count()  # this one included: it is rewarded already
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    this_month = (Reward.objects.for_tenant(referral.tenant_id)
                  .filter(customer=referral.advocate, side=Reward.Side.ADVOCATE, created_at__gte=month_start)
                  .exclude(state=Reward.State.CAPPED).count())
    capped = bool(program.advocate_monthly_cap) and this_month >= program.advocate_monthly_cap
    kind = program.advocate_reward_kind
    found = [Reward(**base, customer=referral.advocate, side=Reward.Side.ADVOCATE, kind=kind,
                    amount=program.advocate_amount(nth),
                    code=_reward_code("THANKS") if kind == RewardKind.DISCOUNT_CODE else "",
                    state=Reward.State.CAPPED if capped else Reward.State.PENDING,
                    last_error=f"monthly cap of {program.advocate_monthly_cap} reached" if capped else "")]
    if program.friend_reward_amount > 0:
        kind = program.friend_reward_kind
        found.append(Reward(**base, customer=referral.friend, side=Reward.Side.FRIEND, kind=kind,
                            amount=program.friend_reward_amount,
                            code=_reward_code("WELCOME") if kind == RewardKind.DISCOUNT_CODE else ""))
    return found


def referrals_release_due(*, limit: int = RELEASE_BATCH) -> int:
    """Reward converted referrals whose release time has come: converted → rewarded exactly once.

    Claims a batch with FOR UPDATE SKIP LOCKED (workers share the work); each move is a
    conditional UPDATE and each reward is unique per (referral, side). The order is read
    again under the lock: a refund or cancel whose event was not handled yet still rejects.
    Returns how many referrals it took; their rewards are pending and due, and
    `rewards_requeue_due` hands them to the senders.
    """
    now = clock.now()
    with transaction.atomic():
        # On Citus store by store (lifecycle/citus.py): a FOR UPDATE stays in one shard group.
        batch = citus.locked_batch(Referral.all_tenants.select_related("order", "advocate", "friend", "code", "tenant")
                                   .filter(state=Referral.State.CONVERTED, release_at__lte=now)
                                   .order_by("release_at", "pk"), limit, of=("self",))
        for referral in batch:
            program = Program.objects.for_tenant(referral.tenant_id).get()
            order = referral.order
            referrals = Referral.objects.for_tenant(referral.tenant_id).filter(pk=referral.pk,
                                                                              state=Referral.State.CONVERTED)
            if order.cancelled_at or _net(order) <= 0 or _net(order) < program.min_order_total:
                reason = "order cancelled before the release" if order.cancelled_at else \
                    "order refunded before the reward was released"
                if referrals.update(state=Referral.State.REJECTED, reason=reason, rejected_at=now):
                    referral.reason = reason
                    _rejected_event(referral)
                continue
            if not referrals.update(state=Referral.State.REWARDED, rewarded_at=now):
                continue
            created = Reward.objects.for_tenant(referral.tenant_id).bulk_create(_rewards_for(referral, program, now))
            for reward in created:
                event_append(
                    tenant=referral.tenant, type="referral.rewarded", occurred_at=now, customer=reward.customer,
                    order=order, dedupe_key=f"referral.rewarded:{referral.pk}:{reward.side}",
                    data={"referral_id": referral.pk, "side": reward.side, "kind": reward.kind,
                          "amount": money_str(reward.amount, reward.currency), "currency": reward.currency,
                          "code": reward.code, "capped": reward.state == Reward.State.CAPPED})
    return len(batch)


def rewards_requeue_due(*, limit: int = RELEASE_BATCH) -> list[tuple[int, int]]:
    """(tenant id, reward id) of rewards to hand out (again): pending and due, or stuck sending past
    their lease."""
    now = clock.now()
    stale = Reward.all_tenants.filter(state=Reward.State.SENDING, next_attempt_at__lte=now)
    stale.update(state=Reward.State.PENDING)
    return list(Reward.all_tenants.filter(state=Reward.State.PENDING, next_attempt_at__lte=now)
                .order_by("next_attempt_at").values_list("tenant_id", "pk")[:limit])


def reward_deliver(*, reward_id: int) -> str:
    """Issue one reward: points through loyalty, a discount code or store credit by POSTing it to
    the store. pending → sending is a conditional UPDATE (a duplicate task does nothing); the
    call happens outside any transaction; transient failures retry with backoff, others fail."""
    now = clock.now()
    claimed = Reward.all_tenants.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), pk=reward_id, state=Reward.State.PENDING,
    ).update(state=Reward.State.SENDING, attempts=F("attempts") + 1, next_attempt_at=now + REWARD_SEND_LEASE)
    if not claimed:
        return ""
    reward = Reward.all_tenants.select_related("customer", "referral__code", "tenant").get(pk=reward_id)
    program = Program.objects.for_tenant(reward.tenant_id).get()
    try:
        if reward.kind == RewardKind.POINTS:
            rewards.points_award(reward)
        else:
            rewards.post_to_store(reward, program.reward_webhook_url)
    except rewards.Transient as exc:
        if reward.attempts < REWARD_MAX_ATTEMPTS:
            backoff = dt.timedelta(seconds=min(3600, 30 * 2 ** (reward.attempts - 1)))
            _reward_finish(reward, Reward.State.PENDING, f"retrying: {exc}", next_attempt_at=clock.now() + backoff)
            return Reward.State.PENDING
        _reward_finish(reward, Reward.State.FAILED, str(exc))
        return Reward.State.FAILED
    except rewards.Terminal as exc:
        _reward_finish(reward, Reward.State.FAILED, str(exc))
        return Reward.State.FAILED
    _reward_finish(reward, Reward.State.ISSUED, "", issued_at=clock.now())
    return Reward.State.ISSUED


def _reward_finish(reward: Reward, state: str, error: str, **fields) -> None:
    Reward.all_tenants.filter(pk=reward.pk, state=Reward.State.SENDING).update(
        state=state, last_error=error[:300], **({"next_attempt_at": None} | fields))


def customer_by_external_id(*, tenant: Tenant, external_id: str) -> Customer:
    customer = Customer.objects.for_tenant(tenant).filter(external_id=external_id).first()
    if customer is None:
        raise NotFound("customers.not_found", f"no customer with external_id {external_id!r}")
    return customer
