"""Spending points: a redemption takes the reward's cost off the balance once, and its code comes from the
store's pool, is generated, or is fetched from the store's webhook (retried with backoff, every attempt kept)."""

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import urllib.error
import urllib.request

from django.db import IntegrityError, transaction
from django.db.models import F

from lifecycle import clock
from lifecycle.errors import Conflict, NotFound, ServiceError
from lifecycle.models import Customer, Tenant

from .models import (
    CodeWebhook,
    LedgerEntry,
    LoyaltyAccount,
    Program,
    Redemption,
    Reward,
    RewardCode,
)
from .services import InsufficientPoints, Kind, account_locked, entry_exists

logger = logging.getLogger(__name__)


# Outbound code webhooks: attempts before giving up, and the request timeout.
WEBHOOK_MAX_ATTEMPTS = 8


WEBHOOK_TIMEOUT_SECONDS = 10


def redemption_create(*, tenant: Tenant, customer: Customer, reward: Reward, source: str) -> tuple[Redemption, bool]:
    """Spend points on a reward and issue its unique code, atomically. Returns (redemption, created).

    Locks the account, then debits with a conditional UPDATE (… WHERE balance >= cost), so two
    concurrent redemptions on one balance can never both pass: the second waits for the lock and
    finds the balance the first left. A pool code is taken with SKIP LOCKED; an empty pool
    refuses the redemption and debits nothing. Idempotent per `source` (the page's form nonce,
    or the API's Idempotency-Key).
    """
    if reward.tenant_id != tenant.pk or not reward.active:
        raise NotFound("loyalty.reward_not_found", "no such reward")
    now = clock.now()
    with transaction.atomic():
        account = account_locked(tenant=tenant, customer_id=customer.pk)
        existing = entry_exists(account, Kind.REDEEM, source)
        if existing is not None:
            return Redemption.objects.for_tenant(tenant).get(entry=existing), False
        if account.balance < reward.cost:
            raise InsufficientPoints(
                "loyalty.insufficient_points",
                f"{reward.name} takes {reward.cost} points; the balance is {account.balance}",
                {"reward_id": [f"needs {reward.cost} points, {account.balance} available"]})
        # Belt and braces under the lock: the debit itself refuses to overdraw.
        if not LoyaltyAccount.objects.for_tenant(tenant).filter(pk=account.pk, balance__gte=reward.cost).update(
                balance=F("balance") - reward.cost, last_activity_at=now):
            raise InsufficientPoints("loyalty.insufficient_points", "not enough points")
        entry = LedgerEntry.objects.for_tenant(tenant).create(
            tenant=tenant, account=account, customer=customer, kind=Kind.REDEEM, source=source,
            reason=f"Redeemed: {reward.name}"[:200], amount=-reward.cost, points=-reward.cost, created_at=now)
        account.balance -= reward.cost
        program = reward.program
        if reward.code_source == Reward.CodeSource.POOL:
            code_row = (RewardCode.objects.for_tenant(tenant).select_for_update(skip_locked=True)
                        .filter(reward=reward, redemption__isnull=True, issued_for="").order_by("pk").first())
            if code_row is None:
                raise Conflict("loyalty.out_of_codes", f"{reward.name} has no codes left; the store has been told")
            redemption = Redemption.objects.for_tenant(tenant).create(
                tenant=tenant, account=account, customer=customer, reward=reward, entry=entry, points=reward.cost,
                code=code_row.code, created_at=now)
            RewardCode.objects.for_tenant(tenant).filter(pk=code_row.pk).update(redemption=redemption)
        else:
            redemption = _generated(tenant, account, customer, reward, entry, now)
            if program.code_webhook_url:
                _queue_code_webhook(program, redemption, now)
    return redemption, True


def _generated(tenant, account, customer, reward, entry, now) -> Redemption:
    for _ in range(5):
        code = f"{reward.code_prefix or 'REWARD'}-{secrets.token_hex(5).upper()}"
        try:
            with transaction.atomic():
                return Redemption.objects.for_tenant(tenant).create(
                    tenant=tenant, account=account, customer=customer, reward=reward, entry=entry,
                    points=reward.cost, code=code, created_at=now,
                    state=Redemption.State.AWAITING_STORE if reward.program.code_webhook_url else Redemption.State.ISSUED)
        except IntegrityError:
            continue  # a 40-bit collision: draw again
    raise ServiceError("loyalty.code_collision", "could not draw a unique code; try again")


def _queue_code_webhook(program: Program, redemption: Redemption, now: dt.datetime) -> None:
    reward = redemption.reward
    payload = {"type": "loyalty.code_issued", "code": redemption.code, "reward": {
        "id": reward.pk, "name": reward.name, "kind": reward.kind, "value": str(reward.value),
        "currency": reward.currency, "product_external_id": reward.product_external_id},
        "customer_external_id": redemption.customer.external_id, "redemption_id": redemption.pk,
        "points": redemption.points, "created_at": now.isoformat()}
    hook = CodeWebhook.objects.for_tenant(program.tenant_id).create(
        tenant_id=program.tenant_id, redemption=redemption, url=program.code_webhook_url, payload=payload,
        next_attempt_at=now, created_at=now)

    def send() -> None:
        # A genuine cycle: loyalty.tasks calls this module, and this service queues that task.
        from .tasks import send_code_webhook  # noqa: PLC0415

        send_code_webhook.delay(hook.pk, tenant_id=hook.tenant_id)

    transaction.on_commit(send)


def code_webhook_send(*, webhook_id: int, post=None) -> str:
    """POST one generated code to the store, signed `X-Loyalty-Signature: sha256=<hmac>`.

    Transient failures (network, 5xx, 429) are retried with backoff by the sweep; anything
    else marks the row failed. Safe to run twice: a sent row is not sent again.
    """
    hook = CodeWebhook.all_tenants.select_related("redemption").filter(pk=webhook_id,
                                                                       state=CodeWebhook.State.PENDING).first()
    if hook is None:
        return ""
    program = Program.objects.for_tenant(hook.tenant_id).first()
    body = json.dumps(hook.payload, sort_keys=True).encode()
    signature = hmac.new((program.code_webhook_secret if program else "").encode(), body, hashlib.sha256).hexdigest()

    def default_post() -> int:
        request = urllib.request.Request(hook.url, data=body, method="POST", headers={  # noqa: S310 - store's URL
            "Content-Type": "application/json", "X-Loyalty-Signature": f"sha256={signature}",
            "Idempotency-Key": f"loyalty-redemption-{hook.redemption_id}"})
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.status

    now = clock.now()
    attempts = hook.attempts + 1
    try:
        status = (post or default_post)()
        error, transient = ("", False) if 200 <= status < 300 else (f"HTTP {status}", status == 429 or status >= 500)
    except urllib.error.HTTPError as exc:
        error, transient = f"HTTP {exc.code}", exc.code == 429 or exc.code >= 500
    except (OSError, TimeoutError) as exc:
        error, transient = f"{type(exc).__name__}: {exc}"[:300], True
    hooks = CodeWebhook.objects.for_tenant(hook.tenant_id).filter(pk=hook.pk, state=CodeWebhook.State.PENDING)
    if not error:
        with transaction.atomic():
            hooks.update(state=CodeWebhook.State.SENT, attempts=attempts, last_error="")
            Redemption.objects.for_tenant(hook.tenant_id).filter(pk=hook.redemption_id).update(
                state=Redemption.State.ISSUED)
        return CodeWebhook.State.SENT
    if transient and attempts < WEBHOOK_MAX_ATTEMPTS:
        hooks.update(attempts=attempts, last_error=error,
                     next_attempt_at=now + dt.timedelta(seconds=min(3600, 30 * 2 ** (attempts - 1))))
        return CodeWebhook.State.PENDING
    logger.warning("loyalty code webhook %s failed: %s", hook.pk, error)
    hooks.update(state=CodeWebhook.State.FAILED, attempts=attempts, last_error=error)
    return CodeWebhook.State.FAILED


def code_webhooks_due(*, limit: int = 500) -> list[tuple[int, int]]:
    """(tenant id, webhook id) of pending code webhooks whose next attempt is due (the task re-checks
    each row's state)."""
    return list(CodeWebhook.all_tenants.filter(state=CodeWebhook.State.PENDING, next_attempt_at__lte=clock.now())
                .order_by("next_attempt_at").values_list("tenant_id", "pk")[:limit])


def reward_code_issue(*, tenant: Tenant | int, reward: Reward, source: str) -> str | None:
    """Give one of a pool reward's codes away without points (a journey's discount-code step), once per
    `source`: asked again for the same source, the same code. None when the pool is empty. The code is
    taken with SKIP LOCKED, so two concurrent steps never get the same one."""
    codes = RewardCode.objects.for_tenant(tenant)
    with transaction.atomic():
        given = codes.filter(issued_for=source).values_list("code", flat=True).first()
        if given is not None:
            return given
        row = (codes.select_for_update(skip_locked=True)
               .filter(reward=reward, redemption__isnull=True, issued_for="").order_by("pk").first())
        if row is None:
            return None
        codes.filter(pk=row.pk).update(issued_for=source, issued_at=clock.now())
    return row.code


def reward_codes_left(*, tenant: Tenant | int, reward: Reward) -> int:
    return RewardCode.objects.for_tenant(tenant).filter(reward=reward, redemption__isnull=True, issued_for="").count()


def reward_codes_upload(*, tenant: Tenant, reward: Reward, codes: list[str]) -> int:
    """Add a store's discount codes to a pool reward. Returns how many were new (duplicates skip)."""
    if reward.tenant_id != tenant.pk:
        raise NotFound("loyalty.reward_not_found", "no such reward")
    cleaned = sorted({c.strip() for c in codes if c and c.strip()})
    before = RewardCode.objects.for_tenant(tenant).filter(reward=reward).count()
    RewardCode.objects.for_tenant(tenant).bulk_create(
        [RewardCode(tenant=tenant, reward=reward, code=c[:100]) for c in cleaned], ignore_conflicts=True)
    return RewardCode.objects.for_tenant(tenant).filter(reward=reward).count() - before
