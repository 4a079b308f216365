"""A constructed A/B test whose every figure is known: a journey with a split at step 1 between two
email arms (steps 2 and 3) that meet again at step 4, and customers already through it.

Arm A (step 2): 400 customers, 200 opened, 80 clicked, 40 ordered 30.00 in the window.
Arm B (step 3): 400 customers, 220 opened, 100 clicked, 64 ordered 35.00 in the window, and 5 more
assigned yesterday (window open, not counted yet).
Every customer had one paid order of 20.00 before enrollment, every fourth a second of 50.00; every
tenth customer of each arm also ordered after the window (not counted).
"""

import dataclasses
import datetime as dt
from decimal import Decimal

from journeys.models import Delivery, EmailTemplate, Enrollment, Journey, Step
from lifecycle.models import Customer, Order

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
ASSIGNED = NOW - dt.timedelta(days=20)
MINUTE = dt.timedelta(minutes=1)


@dataclasses.dataclass
class ArmSpec:
    customers: int
    opened: int
    clicked: int
    converted: int
    order_total: Decimal
    maturing: int = 0


A = ArmSpec(400, 200, 80, 40, Decimal("30.00"))
B = ArmSpec(400, 220, 100, 64, Decimal("35.00"), maturing=5)


def ab_journey(tenant, name: str = "Review request test") -> tuple[Journey, dict[int, Step]]:
    journey = Journey.objects.for_tenant(tenant).create(
        tenant=tenant, name=name, trigger=Journey.Trigger.ORDER_PAID, status=Journey.Status.ACTIVE,
        message_class=Journey.MessageClass.TRANSACTIONAL)
    steps = {1: Step.objects.for_tenant(tenant).create(
        tenant=tenant, journey=journey, position=1, kind=Step.Kind.AB_SPLIT, name="Subject test",
        config={"variants": [{"step": 2, "weight": 1}, {"step": 3, "weight": 1}]})}
    for position, subject in ((2, "Variant A"), (3, "Variant B"), (4, "Both arms go on here")):
        template = EmailTemplate.objects.for_tenant(tenant).create(
            tenant=tenant, name=f"{name} {position}", subject=subject, body="<p>Hi {{ first_name }}</p>")
        steps[position] = Step.objects.for_tenant(tenant).create(
            tenant=tenant, journey=journey, position=position, template=template, name=subject)
    return journey, steps


def ab_store(tenant, *, a: ArmSpec = A, b: ArmSpec = B, name: str = "Review request test") -> tuple[Journey, dict]:
    """The journey and its customers' history, written in bulk (see the module's docstring)."""
    journey, steps = ab_journey(tenant, name)
    customers, orders, enrollments, deliveries = [], [], [], []
    index = 0
    for arm_step, spec in ((steps[2], a), (steps[3], b)):
        for i in range(spec.customers + spec.maturing):
            maturing = i >= spec.customers
            assigned = NOW - dt.timedelta(days=1) if maturing else ASSIGNED
            customer = Customer(tenant=tenant, external_id=f"{name[:8]}-{index}", email=f"ab{index}@{tenant.slug}.example",
                                first_name="Ada", marketing_consent=True)
            customers.append(customer)
            enrolled_at = assigned - MINUTE
            history = [(enrolled_at - dt.timedelta(days=3), Decimal("20.00"))]
            if index % 4 == 0:
                history.append((enrolled_at - dt.timedelta(days=40), Decimal("50.00")))
            if not maturing and i < spec.converted:
                history.append((assigned + dt.timedelta(days=2), spec.order_total))
            if not maturing and i % 10 == 0:
                history.append((assigned + dt.timedelta(days=12), Decimal("99.00")))  # after the 7-day window
            enrollments.append((customer, enrolled_at, assigned, arm_step,
                                {"opened": not maturing and i < spec.opened, "clicked": not maturing and i < spec.clicked}))
            orders.append((customer, history))
            index += 1
    Customer.objects.for_tenant(tenant).bulk_create(customers)
    Order.objects.for_tenant(tenant).bulk_create([
        Order(tenant=tenant, customer=customer, external_id=f"{customer.external_id}-o{k}", number=f"#{k}",
              currency=tenant.currency, subtotal=total, total=total, placed_at=paid_at, paid_at=paid_at,
              status=Order.Status.PAID)
        for customer, history in orders for k, (paid_at, total) in enumerate(history)])
    rows = Enrollment.objects.for_tenant(tenant).bulk_create([
        Enrollment(tenant=tenant, journey=journey, customer=customer, state=Enrollment.State.ACTIVE,
                   enrolled_at=enrolled_at) for customer, enrolled_at, *_ in enrollments])
    for enrollment, (customer, _, assigned, arm_step, engagement) in zip(rows, enrollments, strict=True):
        common = {"tenant": tenant, "enrollment": enrollment, "journey": journey, "customer": customer,
                  "message_class": journey.message_class, "state": Delivery.State.SENT, "sent_at": assigned}
        deliveries.append(Delivery(step=steps[1], reason="branch evaluated", **common))
        deliveries.append(Delivery(step=arm_step, opened_at=assigned + MINUTE if engagement["opened"] else None,
                                   clicked_at=assigned + 2 * MINUTE if engagement["clicked"] else None, **common))
    Delivery.objects.for_tenant(tenant).bulk_create(deliveries)
    return journey, steps
