"""A store's programmes and queues as rows: a loyalty programme with a tier and a reward, a referral
programme with one referral held for review, a survey, and a product review waiting for moderation."""

import datetime as dt
from decimal import Decimal

from feedback.models import Review, Survey
from lifecycle import clock
from lifecycle.models import Customer, Order, Product
from loyalty.models import Program as LoyaltyProgram
from loyalty.models import Reward as LoyaltyReward
from loyalty.models import Tier
from referrals.models import Program as ReferralProgram
from referrals.models import Referral, ReferralCode

FLAGS = [{"rule": "self_referral_email", "reason": "same email address after removing +tags and Gmail dots"}]


def held_referral(tenant, *, advocate: Customer, friend: Customer, order: Order, code: str = "ADA-7K3P") -> Referral:
    now = clock.now()
    referral_code = (ReferralCode.objects.for_tenant(tenant).filter(code=code).first()
                     or ReferralCode.objects.for_tenant(tenant).create(tenant=tenant, customer=advocate, code=code))
    return Referral.objects.for_tenant(tenant).create(
        tenant=tenant, code=referral_code, advocate=advocate, friend=friend, order=order, carrier="api_field",
        state=Referral.State.REVIEW, reason="waiting for review: self_referral_email", flags=FLAGS,
        order_total=order.total, currency=order.currency, converted_at=now, release_at=now + dt.timedelta(days=30),
        review_deadline=now + dt.timedelta(hours=72))


def pending_review(tenant, *, customer: Customer, order: Order, title: str = "Lovely beans",
                   product_id: str = "beans") -> Review:
    product, _ = Product.objects.for_tenant(tenant).get_or_create(
        tenant=tenant, external_id=product_id, defaults={"title": "House beans"})
    return Review.objects.for_tenant(tenant).create(
        tenant=tenant, product=product, customer=customer, order=order, rating=4, title=title,
        body="Rich and smooth.", verified_purchase=True, author_name="Ada L.", created_at=clock.now())


def programmes(tenant, customer: Customer, order: Order) -> dict:
    loyalty = LoyaltyProgram.objects.for_tenant(tenant).create(tenant=tenant)
    tier = Tier.objects.for_tenant(tenant).create(tenant=tenant, program=loyalty, name="Platinum-A",
                                                  threshold=Decimal("500"), multiplier=Decimal("1.5"))
    reward = LoyaltyReward.objects.for_tenant(tenant).create(tenant=tenant, program=loyalty, name="Five off",
                                                             kind="fixed_discount", cost=500, value=Decimal("5"),
                                                             currency="EUR")
    ReferralProgram.objects.for_tenant(tenant).create(tenant=tenant, store_url="https://a-store.example.com/",
                                                      currency=order.currency)
    survey = Survey.objects.for_tenant(tenant).create(tenant=tenant, key="nps", name="NPS", kind=Survey.Kind.NPS,
                                                      alert_email="support@a-store.example.com")
    return {"loyalty": loyalty, "tier": tier, "reward": reward, "survey": survey,
            "referral": held_referral(tenant, advocate=customer, friend=customer, order=order),
            "review": pending_review(tenant, customer=customer, order=order)}
