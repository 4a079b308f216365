"""REST API v1 for referrals: a code's validity and friend offer (checkout), a customer's
link, stats and rewards, and the program's metrics.

Every query starts from `request.tenant`; another store's code or customer is a 404 with
the same body as a missing one.
"""

import datetime as dt
from decimal import Decimal

from drf_spectacular.utils import extend_schema
from pydantic import BaseModel, Field
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle.api.common import ERRORS, PERIOD_PARAMETERS, dump, query_day
from lifecycle.api.outputs import MoneyOut as MoneyStr  # noqa: E402
from lifecycle.errors import NotFound
from lifecycle.money import money_str

from .models import Program, Referral
from .rendering import advocate_page_url, offer_text, share_url
from .selectors import (
    COUNTED,
    advocate_referrals,
    advocate_rewards,
    advocate_stats,
    code_lookup,
    referral_metrics,
)
from .services import customer_by_external_id, referral_code_ensure


class FriendOfferOut(BaseModel):
    kind: str = Field(description="percent or amount")
    value: MoneyStr = Field(examples=["10"])
    currency: str
    text: str = Field(examples=["10% off your first order"])
    new_customers_only: bool
    min_order_total: MoneyStr


class ReferralCodeOut(BaseModel):
    code: str
    valid: bool = Field(description="The program is active and the code is not disabled.")
    advocate_first_name: str
    friend_offer: FriendOfferOut | None = Field(description="Null when the code is not valid.")


class StatsOut(BaseModel):
    clicks: int
    referrals: int
    in_review: int
    converted: int = Field(description="Converted, waiting for the release delay.")
    rewarded: int
    rejected: int
    revenue: MoneyStr = Field(description="Order totals of live referrals.")


class RewardOut(BaseModel):
    id: int
    side: str = Field(description="advocate or friend")
    kind: str = Field(description="points, discount_code or store_credit")
    amount: MoneyStr
    currency: str
    code: str = Field(description="The discount code, for discount_code rewards.")
    state: str = Field(description="pending, sending, issued, failed or capped")
    issued_at: dt.datetime | None


class ReferralOut(BaseModel):
    id: int
    state: str = Field(description="review, converted, rewarded or rejected")
    reason: str
    carrier: str = Field(description="How the order carried the code.")
    order_external_id: str
    attributed_at: dt.datetime = Field(description="When the friend's order carrying the code was attributed.")
    converted_at: dt.datetime | None = Field(
        description="When it counted as a conversion: null while in review and once rejected (a rejected "
                    "referral, a self-referral say, is no conversion whatever it was before).")
    rejected_at: dt.datetime | None = Field(description="When it was rejected; null unless state is rejected.")
    release_at: dt.datetime = Field(description="When the rewards unlock, if nothing is refunded.")


class CustomerReferralOut(BaseModel):
    code: str
    url: str = Field(description="The link to share: records the click and redirects to the store.")
    page_url: str = Field(description="The customer's own share page (a signed link: give it only to them).")
    stats: StatsOut
    referrals: list[ReferralOut]
    rewards: list[RewardOut]


class ReferralMetricsOut(BaseModel):
    invites_sent: int
    clicks: int
    conversions: int
    in_review: int
    rejected: int
    revenue: MoneyStr = Field(description="Totals of referred orders of approved referrals (converted or rewarded); "
                                          "those in review count once approved.")
    referred_customers_revenue: MoneyStr = Field(description="All that referred customers have spent so far.")
    reward_cost: MoneyStr = Field(description="Discount codes and store credit, issued or on the way.")
    reward_points: int
    currency: str
    new_customers: int
    referred_share: float | None = Field(description="Percent of new customers who came by referral.")
    viral_coefficient: float | None = Field(description="Conversions per invited advocate.")


def _program(tenant) -> Program:
    program = Program.objects.for_tenant(tenant).first()
    if program is None:
        raise NotFound("referrals.no_program", "this store has no referral program")
    return program


def _m(amount: Decimal, currency: str) -> str:
    return money_str(amount, currency)


class ReferralCodeView(APIView):
    @extend_schema(responses={200: ReferralCodeOut, **ERRORS}, summary="Check a referral code",
                   description="For checkout: is the code valid, and what does the friend get? Read-only: it "
                   "records no click and attributes nothing. An unknown code is a 404.")
    def get(self, request: Request, code: str) -> Response:
        found = code_lookup(tenant=request.tenant, code=code)
        if found is None:
            raise NotFound("referrals.code_not_found", f"no referral code {code!r}")
        program = Program.objects.for_tenant(request.tenant).first()
        valid = bool(program and program.active and found.disabled_at is None)
        offer = None
        if valid:
            offer = FriendOfferOut(kind=program.friend_offer_kind, value=f"{program.friend_offer_value.normalize():f}",
                                   currency=program.currency, text=offer_text(program),
                                   new_customers_only=program.new_customers_only,
                                   min_order_total=_m(program.min_order_total, program.currency))
        return dump(ReferralCodeOut(code=found.code, valid=valid, advocate_first_name=found.customer.first_name,
                                    friend_offer=offer))


class CustomerReferralView(APIView):
    @extend_schema(responses={200: CustomerReferralOut, **ERRORS}, summary="A customer's referral link and rewards",
                   description="The customer's code and link (issued on first request), clicks, referrals by "
                   "state and rewards. 404 when the store has no referral program.")
    def get(self, request: Request, external_id: str) -> Response:
        customer = customer_by_external_id(tenant=request.tenant, external_id=external_id)
        program = _program(request.tenant)
        code = referral_code_ensure(tenant=request.tenant, customer=customer)
        stats = advocate_stats(tenant=request.tenant, customer=customer)
        return dump(CustomerReferralOut(
            code=code.code, url=share_url(code, request.tenant),
            page_url=advocate_page_url(tenant_id=request.tenant.pk, customer_id=customer.pk),
            stats=StatsOut(**{**stats, "revenue": _m(stats["revenue"], program.currency)}),
            referrals=[ReferralOut(id=r.pk, state=r.state, reason=r.reason, carrier=r.carrier,
                                   order_external_id=r.order.external_id, **_referral_times(r),
                                   release_at=r.release_at.astimezone(dt.UTC))
                       for r in advocate_referrals(tenant=request.tenant, customer=customer)],
            rewards=[RewardOut(id=w.pk, side=w.side, kind=w.kind, amount=_m(w.amount, w.currency), currency=w.currency,
                               code=w.code, state=w.state,
                               issued_at=w.issued_at.astimezone(dt.UTC) if w.issued_at else None)
                     for w in advocate_rewards(tenant=request.tenant, customer=customer)],
        ))


def _referral_times(referral) -> dict[str, dt.datetime | None]:
    """The row's `converted_at` is when the order was attributed, whatever the verdict; the API says
    converted only of a referral that counts as one (selectors.COUNTED): at attribution, or when a
    person approved it out of review."""
    attributed = referral.converted_at.astimezone(dt.UTC)
    rejected = referral.state == Referral.State.REJECTED
    converted = (referral.decided_at or referral.converted_at).astimezone(dt.UTC)
    return {"attributed_at": attributed,
            "converted_at": converted if referral.state in COUNTED else None,
            "rejected_at": referral.rejected_at.astimezone(dt.UTC) if rejected and referral.rejected_at else None}


class ReferralMetricsView(APIView):
    @extend_schema(
        parameters=[
            *PERIOD_PARAMETERS,
        ],
        responses={200: ReferralMetricsOut, **ERRORS}, summary="Referral metrics",
        description="Invites sent, clicks, conversions, revenue from referred customers, reward cost, the "
        "share of new customers who came by referral and the viral coefficient.",
    )
    def get(self, request: Request) -> Response:
        program = _program(request.tenant)
        data = referral_metrics(tenant=request.tenant, since=query_day(request, "since", code="referrals.bad_date"), until=query_day(request, "until", code="referrals.bad_date"))
        for key in ("revenue", "referred_customers_revenue", "reward_cost"):
            data[key] = _m(data[key], program.currency)
        return dump(ReferralMetricsOut(**data, currency=program.currency))
