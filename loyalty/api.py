"""REST API v1 for loyalty: a customer's points, tier and rewards; redeeming; a reward's code pool.

Every query starts from `request.tenant`; another store's customer or reward is a 404 with
the same body as a missing one.
"""

import datetime as dt
import uuid

from drf_spectacular.utils import extend_schema
from pydantic import BaseModel, ConfigDict, Field
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle.api.common import ERRORS, IDEMPOTENCY_HEADER, dump, parse
from lifecycle.api.idempotency import idempotent
from lifecycle.errors import NotFound
from lifecycle.inputs import JsonInt
from lifecycle.models import Customer
from lifecycle.money import money_str
from lifecycle.numbers import whole_number

from .models import Redemption, Reward, RewardCode
from .redemptions import redemption_create, reward_codes_upload
from .selectors import loyalty_summary, plain


class TierOut(BaseModel):
    name: str = Field(description="The current tier, or empty below the first one.")
    next_tier: str = Field(description="The next tier up, or empty at the top.")
    basis: str = Field(description="points (earned in the last 12 months) or spend (in the last 12 months)")
    qualifying: str = Field(description="Points earned or money spent over the last 12 months.")
    next_threshold: str | None
    remaining: str | None = Field(description="What is left to reach the next tier.")
    percent: int = Field(description="Progress to the next tier, 0–100.")


class EntryOut(BaseModel):
    kind: str = Field(description="earn, release (pending → available), clawback, redeem, expire or adjust")
    amount: int = Field(description="The movement as the customer reads it: +120 earned, −40 clawed back.")
    reason: str
    source: str
    balance_change: int
    pending_change: int
    created_at: dt.datetime


class RewardOut(BaseModel):
    id: int
    name: str
    kind: str = Field(description="fixed_discount, percent_discount, free_shipping or free_product")
    cost: int = Field(description="Points it takes.")
    value: str
    currency: str
    affordable: bool = Field(description="The customer's available balance covers it now.")


class LoyaltyOut(BaseModel):
    customer_external_id: str
    balance: int = Field(description="Available points: can be spent now.")
    pending: int = Field(description="Earned points still inside the return window.")
    debt: int = Field(description="Points clawed back after they were spent; repaid first from new points.")
    lifetime_earned: int
    tier: TierOut | None
    history: list[EntryOut] = Field(description="The latest 50 movements, newest first.")
    rewards: list[RewardOut]


class RedemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reward_id: JsonInt = Field(ge=1)  # `true` or "1" is not a reward's id


class RedemptionOut(BaseModel):
    id: int
    reward_id: int
    reward: str
    points: int
    code: str = Field(description="The unique discount code.")
    state: str = Field(description="issued, or awaiting_store while the store's webhook has not confirmed it.")
    balance: int = Field(description="The available balance after this redemption.")
    created_at: dt.datetime


class CodesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codes: list[str] = Field(min_length=1, max_length=10_000)


class CodesOut(BaseModel):
    added: int = Field(description="New codes (ones already in the pool are skipped).")
    available: int = Field(description="Codes not yet given out.")


def _customer(tenant, external_id: str) -> Customer:
    customer = Customer.objects.for_tenant(tenant).filter(external_id=external_id).first()
    if customer is None:
        raise NotFound("customers.not_found", f"no customer with external_id {external_id!r}")
    return customer


def _reward(tenant, reward_id: int | str) -> Reward:
    """The reward a body's reward_id (an int) or a path's (text: ASCII digits or nothing) names."""
    pk = whole_number(str(reward_id), minimum=1)
    reward = (Reward.objects.for_tenant(tenant).select_related("program").filter(pk=pk).first()
              if pk is not None else None)
    if reward is None:
        raise NotFound("loyalty.reward_not_found", f"no reward with id {reward_id!r}")
    return reward


def loyalty_out(tenant, customer: Customer) -> LoyaltyOut:
    summary = loyalty_summary(tenant=tenant.pk, customer=customer)
    p = summary.progress
    tier = None
    if p is not None:
        tier = TierOut(name=p.tier, next_tier=p.next_tier, basis=p.basis, qualifying=plain(p.qualifying),
                       next_threshold=plain(p.next_threshold), remaining=plain(p.remaining), percent=p.percent)
    return LoyaltyOut(
        customer_external_id=customer.external_id or "", balance=summary.balance, pending=summary.pending,
        debt=summary.debt, lifetime_earned=summary.lifetime_earned, tier=tier,
        history=[EntryOut(kind=e.kind, amount=e.amount, reason=e.reason, source=e.source, balance_change=e.points,
                          pending_change=e.pending_points, created_at=e.created_at.astimezone(dt.UTC))
                 for e in summary.history],
        rewards=[RewardOut(id=r.pk, name=r.name, kind=r.kind, cost=r.cost,
                           value=money_str(r.value, r.currency) if r.currency else plain(r.value),
                           currency=r.currency, affordable=r.cost <= summary.balance) for r in summary.rewards],
    )


def redemption_out(redemption: Redemption, balance: int) -> RedemptionOut:
    return RedemptionOut(id=redemption.pk, reward_id=redemption.reward_id, reward=redemption.reward.name,
                         points=redemption.points, code=redemption.code, state=redemption.state, balance=balance,
                         created_at=redemption.created_at.astimezone(dt.UTC))


class CustomerLoyaltyView(APIView):
    @extend_schema(responses={200: LoyaltyOut, **ERRORS}, summary="A customer's points, tier and rewards",
                   description="Balance, pending points, tier and progress to the next, recent history, and the "
                   "rewards with whether the balance covers each.")
    def get(self, request: Request, external_id: str) -> Response:
        return dump(loyalty_out(request.tenant, _customer(request.tenant, external_id)))


class CustomerRedemptionsView(APIView):
    @extend_schema(
        request=RedemptionIn, parameters=[IDEMPOTENCY_HEADER], responses={201: RedemptionOut, **ERRORS},
        summary="Redeem points for a reward",
        description="Debits the reward's points and issues a unique code in one transaction. 409 "
        "`loyalty.insufficient_points` when the balance does not cover it, 409 `loyalty.out_of_codes` when a "
        "pool reward has no codes left (nothing is debited). With an Idempotency-Key a retry redeems once.",
    )
    @idempotent
    def post(self, request: Request, external_id: str) -> Response:
        data = parse(RedemptionIn, request)
        customer = _customer(request.tenant, external_id)
        reward = _reward(request.tenant, data.reward_id)
        key = request.headers.get("Idempotency-Key")
        source = f"api:{key}" if key else f"api:{uuid.uuid4()}"
        redemption, _ = redemption_create(tenant=request.tenant, customer=customer, reward=reward, source=source)
        redemption.account.refresh_from_db(fields=["balance"])
        return dump(redemption_out(redemption, redemption.account.balance), status.HTTP_201_CREATED)


class RewardCodesView(APIView):
    @extend_schema(request=CodesIn, parameters=[IDEMPOTENCY_HEADER], responses={200: CodesOut, **ERRORS},
                   summary="Upload discount codes to a reward's pool",
                   description="For rewards whose codes come from the store: each redemption takes one unused code.")
    @idempotent
    def post(self, request: Request, reward_id: str) -> Response:
        data = parse(CodesIn, request)
        reward = _reward(request.tenant, reward_id)
        added = reward_codes_upload(tenant=request.tenant, reward=reward, codes=data.codes)
        available = RewardCode.objects.for_tenant(request.tenant).filter(reward=reward, redemption__isnull=True,
                                                                            issued_for="").count()
        return dump(CodesOut(added=added, available=available))
