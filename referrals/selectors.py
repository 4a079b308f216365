"""Reads that the API, the admin and pages share. Every query starts from a tenant."""

import datetime as dt
from decimal import Decimal

from django.db.models import Count, Q, Sum

from lifecycle.models import Customer, Tenant

from .models import Click, Invite, Referral, ReferralCode, Reward
from .services import normalize_code

# Not rejected: the friend's one referral (in review, it may still be rejected).
LIVE = (Referral.State.REVIEW, Referral.State.CONVERTED, Referral.State.REWARDED)
# Approved: what counts as a conversion in every statistic (conversions, revenue, the referred share,
# the viral coefficient). A referral in review is counted as in review until someone approves it.
COUNTED = (Referral.State.CONVERTED, Referral.State.REWARDED)


def code_lookup(*, tenant: Tenant, code: str) -> ReferralCode | None:
    return ReferralCode.objects.for_tenant(tenant).select_related("customer").filter(
        code=normalize_code(code)).first()


def advocate_stats(*, tenant: Tenant, customer: Customer) -> dict:
    referrals = Referral.objects.for_tenant(tenant).filter(advocate=customer)
    by_state = dict(referrals.values_list("state").annotate(n=Count("pk")).order_by())
    revenue = referrals.filter(state__in=COUNTED).aggregate(total=Sum("order_total"))["total"] or Decimal("0")
    return {
        "clicks": Click.objects.for_tenant(tenant).filter(code__customer=customer, by_advocate=False).count(),
        "referrals": sum(by_state.values()),
        "in_review": by_state.get(Referral.State.REVIEW, 0),
        "converted": by_state.get(Referral.State.CONVERTED, 0),
        "rewarded": by_state.get(Referral.State.REWARDED, 0),
        "rejected": by_state.get(Referral.State.REJECTED, 0),
        "revenue": revenue,
    }


def advocate_rewards(*, tenant: Tenant, customer: Customer) -> list[Reward]:
    return list(Reward.objects.for_tenant(tenant).filter(customer=customer).order_by("-created_at", "-pk")[:100])


def advocate_referrals(*, tenant: Tenant, customer: Customer) -> list[Referral]:
    return list(Referral.objects.for_tenant(tenant).filter(advocate=customer)
                .select_related("order", "code").order_by("-converted_at", "-pk")[:100])


def referral_metrics(*, tenant: Tenant, since: dt.datetime | None = None, until: dt.datetime | None = None) -> dict:
    """Invites, clicks, conversions, revenue and reward cost for a period (by when each happened).

    conversions and revenue count approved referrals only (converted or rewarded): one in review
    is counted in in_review until someone approves it, one rejected in rejected. Referrals fall
    in a period by when the friend's order was attributed (`converted_at`).
    new_customers: customers whose first paid order falls in the period; referred_share is
    the percent of them whose first order came through an approved referral. viral_coefficient
    is approved referrals per invited advocate (K = invites per advocate × conversion per invite).
    """
    def period(field: str) -> Q:
        q = Q()
        if since:
            q &= Q(**{f"{field}__gte": since})
        if until:
            q &= Q(**{f"{field}__lt": until})
        return q

    referrals = Referral.objects.for_tenant(tenant).filter(period("converted_at"))
    counted = referrals.filter(state__in=COUNTED)
    invites = Invite.objects.for_tenant(tenant).filter(period("created_at"))
    invited_advocates = invites.values("customer").distinct().count()
    rewards = Reward.objects.for_tenant(tenant).filter(period("created_at"), state__in=[
        Reward.State.ISSUED, Reward.State.PENDING, Reward.State.SENDING])
    cost = {row["kind"]: row["total"] for row in rewards.values("kind").annotate(total=Sum("amount")).order_by()}
    new_customers = Customer.objects.for_tenant(tenant).filter(
        period("first_order_at"), first_order_at__isnull=False).count()
    referred_new = counted.filter(friend__first_order_at__isnull=False).values("friend").distinct().count()
    conversions = counted.count()
    friends = Customer.objects.for_tenant(tenant).filter(pk__in=counted.values("friend"))
    return {
        "invites_sent": invites.count(),
        "clicks": Click.objects.for_tenant(tenant).filter(period("at"), by_advocate=False).count(),
        "conversions": conversions,
        "in_review": referrals.filter(state=Referral.State.REVIEW).count(),
        "rejected": referrals.filter(state=Referral.State.REJECTED).count(),
        "revenue": counted.aggregate(total=Sum("order_total"))["total"] or Decimal("0"),
        # Everything the referred friends have spent so far (net of refunds, the store's currency).
        "referred_customers_revenue": friends.aggregate(total=Sum("total_spent"))["total"] or Decimal("0"),
        "reward_cost": cost.get("discount_code", Decimal("0")) + cost.get("store_credit", Decimal("0")),
        "reward_points": int(cost.get("points", 0) or 0),
        "new_customers": new_customers,
        "referred_share": round(100 * referred_new / new_customers, 1) if new_customers else None,
        "viral_coefficient": round(conversions / invited_advocates, 3) if invited_advocates else None,
    }
