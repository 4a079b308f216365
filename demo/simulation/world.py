"""The few configuration rows a simulated store needs, written through the apps' own services and models:
products, the two simulated journeys (with their holdout groups), the surveys, a loyalty program with
one reward, and a referral program. Re-running on the same store reuses what is there.
"""

import dataclasses
import datetime as dt
from decimal import Decimal

from django.db.models import Q

from feedback.models import Survey
from journeys.definition import JourneyIn
from journeys.io import journey_import
from journeys.models import Journey, Step
from lifecycle.models import Product, Tenant
from loyalty.models import Program as LoyaltyProgram
from loyalty.models import Reward
from referrals.models import Program as ReferralProgram

# The journey that carries the known effect: first-time buyers, measured over 30 days.
NUDGE = {
    "name": "Second order nudge",
    "description": "Simulated: first-time buyers get two emails; 20% are held out to measure the lift.",
    "trigger": "first_order",
    "exit_events": ["order.placed"],
    "goal_event": "order.paid",
    "attribution_window": "P30D",
    "holdout_percent": 20,
    "priority": 5,
    "entry_policy": "once_per_customer",
    "steps": [
        {"position": 1, "name": "How is it going?", "wait": "P3D", "template": {
            "name": "Nudge: how is it going", "subject": "How is it going, {{ first_name }}?",
            "body": "<p>Hi {{ first_name }},</p><p>Three days in: how do you like it? Reply with any question.</p>"}},
        {"position": 2, "name": "Something for next time", "wait": "P11D", "template": {
            "name": "Nudge: something for next time", "subject": "A little something for your next order",
            "body": "<p>Hi {{ first_name }},</p><p>Here is 10% off your next order, for the next two weeks.</p>"}},
    ],
}
# A journey with no effect at all: its measured lift should straddle 0.
CHECK_IN = {
    "name": "Post-delivery check-in",
    "description": "Simulated: every delivered order gets a check-in email; 10% are held out.",
    "trigger": "order_delivered",
    "exit_events": ["order.refunded"],
    "goal_event": "order.paid",
    "attribution_window": "P7D",
    "holdout_percent": 10,
    "priority": 2,
    "steps": [
        {"position": 1, "name": "Check-in", "wait": "P2D", "template": {
            "name": "Check-in after delivery", "subject": "Did everything arrive as it should?",
            "body": "<p>Hi {{ first_name }},</p><p>Your order arrived two days ago. All good?</p>"}},
    ],
}
PRODUCTS = [
    ("sim-espresso", "SIM-ESP", "Espresso roast, 1 kg", Decimal("29.00")),
    ("sim-filter", "SIM-FIL", "Filter roast, 500 g", Decimal("16.50")),
    ("sim-decaf", "SIM-DEC", "Decaf, 500 g", Decimal("17.90")),
    ("sim-grinder", "SIM-GRD", "Burr grinder", Decimal("149.00")),
    ("sim-kettle", "SIM-KET", "Gooseneck kettle", Decimal("79.00")),
    ("sim-papers", "SIM-PAP", "Paper filters (100)", Decimal("6.90")),
    ("sim-dripper", "SIM-DRP", "Ceramic dripper", Decimal("24.00")),
    ("sim-scale", "SIM-SCL", "Brew scale", Decimal("39.00")),
]
REDEMPTION_COST = 500


@dataclasses.dataclass
class World:
    tenant: Tenant
    products: list[tuple[int, str, str, str, Decimal]]  # (id, external_id, sku, title, price)
    nudge: object  # journeys.models.Journey
    nudge_steps: list
    check_in: object
    check_in_steps: list
    surveys: dict[str, object]  # kind -> feedback.models.Survey
    loyalty_program: object
    loyalty_reward: object
    referral_program: object


def _journey(tenant: Tenant, spec: dict):
    journey = Journey.objects.for_tenant(tenant).filter(name=spec["name"]).first()
    if journey is None:
        journey, _ = journey_import(tenant=tenant, data=JourneyIn.model_validate({**spec, "status": "active"}))
    steps = list(Step.objects.for_tenant(tenant).filter(journey=journey).order_by("position"))
    return journey, steps


def build_world(tenant: Tenant) -> World:
    products = Product.objects.for_tenant(tenant)
    for external_id, sku, title, _ in PRODUCTS:
        products.get_or_create(tenant=tenant, external_id=external_id, defaults={
            "sku": sku, "title": title, "url": f"https://shop.example.com/products/{external_id}"})
    ids = dict(products.filter(external_id__in=[p[0] for p in PRODUCTS]).values_list("external_id", "pk"))
    nudge, nudge_steps = _journey(tenant, NUDGE)
    check_in, check_in_steps = _journey(tenant, CHECK_IN)

    surveys = {}
    for kind in ("nps", "csat", "ces"):
        found = Survey.objects.for_tenant(tenant).filter(Q(key=kind) | Q(kind=kind)).order_by("pk").first()
        surveys[kind] = found or Survey.objects.for_tenant(tenant).create(
            tenant=tenant, key=kind, kind=kind, name=Survey.Kind(kind).label)

    loyalty_program = LoyaltyProgram.objects.for_tenant(tenant).first() or LoyaltyProgram.objects.for_tenant(
        tenant).create(tenant=tenant, pending_days=14)
    reward = Reward.objects.for_tenant(tenant).filter(program=loyalty_program, cost=REDEMPTION_COST).first()
    reward = reward or Reward.objects.for_tenant(tenant).create(
        tenant=tenant, program=loyalty_program, name=f"{tenant.currency} 5 off your next order",
        kind=Reward.Kind.FIXED_DISCOUNT, cost=REDEMPTION_COST, value=Decimal("5"), currency=tenant.currency,
        code_source=Reward.CodeSource.GENERATED, code_prefix="SIM")
    referral_program = ReferralProgram.objects.for_tenant(tenant).first() or ReferralProgram.objects.for_tenant(
        tenant).create(tenant=tenant, store_url="https://shop.example.com/", currency=tenant.currency)
    return World(
        tenant=tenant,
        products=[(ids[e], e, sku, title, price) for e, sku, title, price in PRODUCTS],
        nudge=nudge, nudge_steps=nudge_steps, check_in=check_in, check_in_steps=check_in_steps,
        surveys=surveys, loyalty_program=loyalty_program, loyalty_reward=reward, referral_program=referral_program,
    )


def window_days(journey) -> float:
    return journey.attribution_window / dt.timedelta(days=1)
