"""Each dashboard figure on a small hand-built store, with the numbers worked out by hand."""

import datetime as dt
from decimal import Decimal

import pytest

from feedback.models import Survey, SurveyRequest, SurveyResponse
from journeys.models import Delivery, Enrollment, Journey, Step
from lifecycle import clock
from lifecycle.aggregates import refresh_aggregates
from lifecycle.models import Customer, Event, Order
from lifecycle.stats import newcombe_difference, welch_difference
from loyalty.models import LedgerEntry, LoyaltyAccount, Redemption, Reward
from loyalty.models import Program as LoyaltyProgram
from referrals.models import Click, Referral, ReferralCode
from referrals.models import Program as ReferralProgram
from referrals.models import Reward as ReferralReward
from workspace import metrics, metrics_journeys

from .conftest import client_for, make_user

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_now():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def period(tenant):
    """1 April – 30 June 2026 in Berlin, as the page's ?from=2026-04-01&to=2026-06-30 gives it."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Berlin")
    return metrics.Period(dt.datetime(2026, 4, 1, tzinfo=zone).astimezone(UTC),
                          dt.datetime(2026, 7, 1, tzinfo=zone).astimezone(UTC), zone)


def customer(tenant, name: str) -> Customer:
    return Customer.objects.for_tenant(tenant).create(tenant=tenant, external_id=name, email=f"{name}@example.com")


def order(tenant, who: Customer, placed: dt.datetime, total: str, currency: str = "EUR", **extra) -> Order:
    values = {"status": Order.Status.PAID, **extra}
    return Order.objects.for_tenant(tenant).create(
        tenant=tenant, customer=who, external_id=f"{who.external_id}-{placed:%m%d}-{total}", currency=currency,
        total=Decimal(total), subtotal=Decimal(total), placed_at=placed, paid_at=placed + dt.timedelta(minutes=2),
        **values)


def event(tenant, who: Customer, type_: str, when: dt.datetime) -> Event:
    return Event.objects.for_tenant(tenant).create(tenant=tenant, customer=who, type=type_, occurred_at=when,
                                                   processed_at=when)


@pytest.fixture
def shop(tenant):
    """A (Apr 5, Apr 15: 10 days), B (Apr 10, May 20, Jun 1: 40 days), C (May 1, and a cancelled order),
    D (Mar 1, so not new; Apr 20), E (Jun 10, in USD). New customers: A B C E; repeaters: A B."""
    people = {name: customer(tenant, name) for name in "ABCDE"}
    a, b, c, d, e = people.values()
    order(tenant, a, at(4, 5), "100")
    order(tenant, a, at(4, 15), "50")
    order(tenant, b, at(4, 10), "80")
    order(tenant, b, at(5, 20), "40")
    order(tenant, b, at(6, 1), "30")
    order(tenant, c, at(5, 1), "60")
    order(tenant, c, at(5, 5), "999", cancelled_at=at(5, 6), status=Order.Status.CANCELLED)
    order(tenant, d, at(3, 1), "200")
    order(tenant, d, at(4, 20), "20")
    order(tenant, e, at(6, 10), "30", currency="USD")
    refresh_aggregates(tenant, {p.pk for p in people.values()})
    return people


def test_new_customers_repeat_rate_orders_and_revenue(tenant, shop, period):
    got = metrics.customer_metrics(tenant, period)
    assert (got["new_customers"], got["repeat_customers"], got["repeat_rate"]) == (4, 2, 0.5)
    # Placed in the period, paid, not cancelled: A×2, B×3, C, D's second, E. Revenue in EUR only.
    assert got["orders"] == 8
    assert got["revenue"] == Decimal("380.00")


def test_time_to_second_order_histogram_and_median(tenant, shop, period):
    got = metrics.time_to_second_order(tenant, period)
    assert got["customers"] == 2
    assert got["median_days"] == 25.0
    assert [(b["label"], b["customers"]) for b in got["buckets"]] == [
        ("0–7 days", 0), ("8–14", 1), ("15–30", 0), ("31–60", 1), ("61–90", 0), ("91–180", 0), ("over 180", 0)]
    assert got["buckets"][1]["share"] == 0.5


def test_lifetime_value_by_first_order_month(tenant, shop, period):
    got = metrics.ltv_cohorts(tenant, period, NOW)
    rows = {row["cohort"]: row for row in got["rows"]}
    assert list(rows) == [dt.date(2026, 4, 1), dt.date(2026, 5, 1), dt.date(2026, 6, 1)]
    april, may, june = rows.values()
    # April: A and B. M0 = (100 + 50 + 80) / 2, M1 adds B's 40, M2 B's 30; June is month 2, so M3 on is blank.
    assert april["customers"] == 2
    assert april["cells"][:4] == [Decimal("115.00"), Decimal("135.00"), Decimal("150.00"), None]
    assert may["customers"] == 1 and may["cells"][:3] == [Decimal("60.00"), Decimal("60.00"), None]
    # E paid in USD: a customer of the cohort, no revenue in the store's currency.
    assert june["customers"] == 1 and june["cells"][:2] == [Decimal("0.00"), None]
    assert got["max"] == Decimal("150.00")


def test_feedback_scores_count_final_answers_only(tenant, shop, period):
    a = shop["A"]
    surveys = {kind: Survey.objects.for_tenant(tenant).create(tenant=tenant, key=kind, kind=kind, name=kind)
               for kind in ("nps", "csat", "ces")}

    def answer(kind, score, when, state=SurveyResponse.State.FINAL):
        request = SurveyRequest.objects.for_tenant(tenant).create(
            tenant=tenant, survey=surveys[kind], customer=a, asked_because="test", asked_at=when)
        SurveyResponse.objects.for_tenant(tenant).create(
            tenant=tenant, request=request, survey=surveys[kind], customer=a, score=score, state=state,
            answered_at=when, category=surveys[kind].category(score))

    for score, day in ((10, 6), (9, 7), (6, 8), (8, 16)):
        answer("nps", score, at(4, day))
    answer("nps", 0, at(4, 9), state=SurveyResponse.State.PROVISIONAL)  # a scanner's click, not settled
    answer("nps", 0, at(3, 9))  # before the period
    answer("csat", 5, at(5, 4))
    answer("csat", 2, at(5, 5))
    answer("ces", 2, at(6, 2))
    answer("ces", 4, at(6, 3))

    got = metrics.feedback_over_time(tenant, period)
    assert got["overall"] == {"nps": 25.0, "nps_n": 4, "promoters": 2, "detractors": 1, "csat": 50.0, "csat_n": 2,
                              "ces": 3.0, "ces_n": 2}
    weeks = {row["bucket"]: row for row in got["series"]}
    # Weeks start on Monday (Berlin): 6–8 April are the week of 6 April, 16 April the week of 13 April.
    assert weeks[dt.date(2026, 4, 6)]["nps_n"] == 3 and weeks[dt.date(2026, 4, 6)]["nps"] == round(100 * 1 / 3, 1)
    assert weeks[dt.date(2026, 4, 13)]["nps"] == 0.0
    assert weeks[dt.date(2026, 5, 4)]["csat"] == 50.0
    assert weeks[dt.date(2026, 6, 1)]["ces"] == 3.0
    assert len(weeks) == 4


def test_support_driven_repeat_purchase_rate(tenant, shop, period):
    for name in "ACE":
        event(tenant, shop[name], "support.contacted", at(6, 2))
    event(tenant, shop["D"], "support.contacted", at(6, 2))  # not a new customer of the period
    got = metrics.repeat_by_event(tenant, period, (metrics.SUPPORT_EVENT,))
    assert got["with"] == {"customers": 3, "repeat": 1, "rate": pytest.approx(1 / 3)}
    assert got["without"] == {"customers": 1, "repeat": 1, "rate": 1.0}
    assert got["share"] == 0.75


def test_product_adoption_share_and_events_per_week(tenant, shop, period):
    event(tenant, shop["B"], "product.registered", at(4, 14))
    event(tenant, shop["B"], "feature.used", at(4, 15))
    event(tenant, shop["B"], "feature.used", at(4, 16))
    event(tenant, shop["C"], "feature.used", at(5, 12))
    event(tenant, shop["C"], "order.paid", at(5, 12))  # not an adoption event
    got = metrics.repeat_by_event(tenant, period, metrics.ADOPTION_EVENTS)
    assert got["with"] == {"customers": 2, "repeat": 1, "rate": 0.5}
    assert got["without"] == {"customers": 2, "repeat": 1, "rate": 0.5}
    assert got["share"] == 0.5
    assert metrics.events_over_time(tenant, period, metrics.ADOPTION_EVENTS) == [
        {"bucket": dt.date(2026, 4, 13), "product.registered": 1, "feature.used": 1},
        {"bucket": dt.date(2026, 5, 11), "product.registered": 0, "feature.used": 1},
    ]


def test_loyalty_members_liability_and_what_moved(tenant, shop, period):
    a, b = shop["A"], shop["B"]
    program = LoyaltyProgram.objects.for_tenant(tenant).create(tenant=tenant)
    reward = Reward.objects.for_tenant(tenant).create(tenant=tenant, program=program, name="5 off", cost=500,
                                                      kind=Reward.Kind.FIXED_DISCOUNT, value=Decimal("5"),
                                                      currency="EUR")
    account_a = LoyaltyAccount.objects.for_tenant(tenant).create(tenant=tenant, customer=a, balance=100, pending=50)
    account_b = LoyaltyAccount.objects.for_tenant(tenant).create(tenant=tenant, customer=b, pending=20)
    entries = LedgerEntry.objects.for_tenant(tenant)
    entries.create(tenant=tenant, account=account_a, customer=a, kind="earn", source="order:1", reason="o",
                   amount=150, pending_points=150, created_at=at(4, 5))
    entries.create(tenant=tenant, account=account_b, customer=b, kind="earn", source="order:2", reason="o",
                   amount=20, pending_points=20, created_at=at(5, 20))
    entries.create(tenant=tenant, account=account_b, customer=b, kind="earn", source="order:0", reason="o",
                   amount=999, pending_points=999, created_at=at(3, 20))  # before the period
    redeem = entries.create(tenant=tenant, account=account_a, customer=a, kind="redeem", source="r:1", reason="r",
                            amount=-50, points=-50, created_at=at(5, 21))
    Redemption.objects.for_tenant(tenant).create(tenant=tenant, account=account_a, customer=a, reward=reward,
                                                 entry=redeem, points=50, code="X1", created_at=at(5, 21))
    got = metrics.loyalty_metrics(tenant, period)
    assert (got["members"], got["available"], got["pending"], got["liability_points"]) == (2, 100, 70, 170)
    assert got["liability_value"] == Decimal("1.70")  # 170 points at 5 EUR per 500
    assert (got["earned"], got["redeemed"], got["redemptions"], got["redeeming_customers"]) == (170, 50, 1, 1)
    assert got["series"] == [{"bucket": dt.date(2026, 3, 30), "earned": 150, "redeemed": 0},
                             {"bucket": dt.date(2026, 5, 18), "earned": 20, "redeemed": 50}]


def test_referrals_clicks_conversions_revenue_and_cost(tenant, shop, period):
    a, c = shop["A"], shop["C"]
    ReferralProgram.objects.for_tenant(tenant).create(tenant=tenant, store_url="https://shop.example.com/")
    code = ReferralCode.objects.for_tenant(tenant).create(tenant=tenant, customer=a, code="ADA1")
    for when, own in ((at(4, 20), False), (at(4, 28), False), (at(4, 29), True), (at(3, 1), False)):
        Click.objects.for_tenant(tenant).create(tenant=tenant, code=code, at=when, ip_hash="i", device_hash="d",
                                                by_advocate=own)
    first = Order.objects.for_tenant(tenant).get(customer=c, total=Decimal("60"))
    referral = Referral.objects.for_tenant(tenant).create(
        tenant=tenant, code=code, advocate=a, friend=c, order=first, carrier="api_field", state="rewarded",
        order_total=Decimal("60"), currency="EUR", converted_at=at(5, 1), release_at=at(5, 31))
    ReferralReward.objects.for_tenant(tenant).create(tenant=tenant, referral=referral, customer=a, side="advocate",
                                                     kind="discount_code", amount=Decimal("10"), currency="EUR",
                                                     state="issued", created_at=at(5, 31))
    # B's referral is still in review: counted as in review, not as a conversion, nor in the revenue.
    held = Order.objects.for_tenant(tenant).get(customer=shop["B"], total=Decimal("40"))
    Referral.objects.for_tenant(tenant).create(
        tenant=tenant, code=code, advocate=a, friend=shop["B"], order=held, carrier="api_field", state="review",
        order_total=Decimal("40"), currency="EUR", converted_at=at(5, 20), release_at=at(6, 19))
    got = metrics.referral_summary(tenant, period)
    assert (got["clicks"], got["conversions"], got["revenue"], got["reward_cost"]) == (2, 1, Decimal("60.00"),
                                                                                        Decimal("10.00"))
    assert got["in_review"] == 1
    assert got["series"] == [
        {"bucket": dt.date(2026, 4, 20), "clicks": 1, "conversions": 0, "revenue": Decimal("0.00")},
        {"bucket": dt.date(2026, 4, 27), "clicks": 1, "conversions": 1, "revenue": Decimal("60.00")},
    ]


# --- journeys: funnel and lift ------------------------------------------------------------------


@pytest.fixture
def nudge(tenant):
    """Holdout 50%, goal order.paid within 7 days. Treated T1–T4 enrolled 1–4 May, held out H1–H2 on 5–6 May,
    M1 on 28 June (window still open), R1 rejected. Conversions: T1 +2 days (30), T2 +3 days (50),
    T3 +8 days (70: outside), H1 +2 days (20)."""
    journey = Journey.objects.for_tenant(tenant).create(
        tenant=tenant, name="Nudge", trigger="first_order", status="active", holdout_percent=50,
        attribution_window=dt.timedelta(days=7))
    steps = [Step.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, position=n, name=f"Email {n}")
             for n in (1, 2)]
    plan = [("T1", 1, "active", 2, "30"), ("T2", 2, "completed", 3, "50"), ("T3", 3, "exited", 8, "70"),
            ("T4", 4, "completed", None, None), ("H1", 5, "holdout", 2, "20"), ("H2", 6, "holdout", None, None)]
    people = {}
    for name, day, state, after, total in plan:
        who = customer(tenant, name)
        trigger = order(tenant, who, at(5, day) - dt.timedelta(minutes=3), "10")
        Enrollment.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, customer=who, order=trigger,
                                                     state=state, enrolled_at=at(5, day))
        if after is not None:
            order(tenant, who, at(5, day) + dt.timedelta(days=after) - dt.timedelta(minutes=2), total)
        people[name] = who
    for name, day, state in (("M1", (6, 28), "active"), ("R1", (5, 7), "rejected")):
        who = customer(tenant, name)
        Enrollment.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, customer=who, state=state,
                                                     enrolled_at=at(*day))
        people[name] = who
    refresh_aggregates(tenant, {who.pk for who in people.values()})
    enrollments = {e.customer.external_id: e for e in Enrollment.objects.for_tenant(tenant).select_related("customer")}

    def sent(name, step, day, **engagement):
        Delivery.objects.for_tenant(tenant).create(
            tenant=tenant, enrollment=enrollments[name], step=step, journey=journey, customer=people[name],
            message_class="marketing", state="sent", sent_at=at(5, day, 13), **engagement)

    sent("T1", steps[0], 1, delivered_at=at(5, 1, 14), opened_at=at(5, 1, 15), clicked_at=at(5, 1, 16))
    sent("T2", steps[0], 2, delivered_at=at(5, 2, 14), opened_at=at(5, 2, 15))
    sent("T3", steps[0], 3, delivered_at=at(5, 3, 14))
    sent("T4", steps[0], 4, bounced_at=at(5, 4, 14))
    sent("T3", steps[1], 9, delivered_at=at(5, 9, 14))
    Delivery.objects.for_tenant(tenant).create(  # due later: no send, not in the funnel
        tenant=tenant, enrollment=enrollments["T1"], step=steps[1], journey=journey, customer=people["T1"],
        message_class="marketing", state="pending", due_at=at(7, 2))
    return journey


def test_lift_counts_closed_windows_and_measures_both_groups_the_same_way(tenant, nudge, period):
    lift = metrics_journeys.journey_lift(tenant, nudge, period, NOW)
    assert (lift.treated.customers, lift.treated.converted, lift.treated.revenue) == (4, 2, Decimal("80"))
    assert (lift.holdout.customers, lift.holdout.converted, lift.holdout.revenue) == (2, 1, Decimal("20"))
    assert lift.maturing == 1
    assert lift.conversion == newcombe_difference(2, 4, 1, 2)
    assert lift.revenue.estimate == pytest.approx(20 - 10)
    expected = welch_difference(lift.treated.sums(), lift.holdout.sums())
    assert (lift.revenue.low, lift.revenue.high) == (pytest.approx(expected.low), pytest.approx(expected.high))
    assert lift.treated.sums().total_squares == 30 ** 2 + 50 ** 2
    assert lift.verdict.enough is False
    assert lift.verdict.reason == ("Not enough data yet: 2 customers in the holdout group, and a lift needs at "
                                   "least 50.")


def test_lift_with_an_event_goal_counts_that_event_in_the_window(tenant, nudge, period):
    nudge.goal_event = "review.submitted"
    nudge.save()
    h2 = Customer.objects.for_tenant(tenant).get(external_id="H2")
    t4 = Customer.objects.for_tenant(tenant).get(external_id="T4")
    event(tenant, h2, "review.submitted", at(5, 6) + dt.timedelta(days=6))
    event(tenant, t4, "review.submitted", at(5, 4) + dt.timedelta(days=7, hours=1))  # an hour too late
    lift = metrics_journeys.journey_lift(tenant, nudge, period, NOW)
    assert (lift.treated.converted, lift.holdout.converted) == (0, 1)
    assert lift.treated.revenue == Decimal("80")  # revenue is still the orders in the window


def test_lift_says_plainly_when_a_journey_has_no_holdout(tenant, nudge, period):
    nudge.holdout_percent = 0
    nudge.save()
    Enrollment.objects.for_tenant(tenant).filter(state="holdout").delete()
    lift = metrics_journeys.journey_lift(tenant, nudge, period, NOW)
    assert lift.conversion is None and lift.revenue is None
    assert lift.verdict.reason.startswith("No holdout group: this journey sends to everyone")
    assert metrics_journeys.lifts(tenant, period, NOW) == []


def test_funnel_per_step_from_sent_to_revenue(tenant, nudge, period):
    (item,) = metrics_journeys.journey_funnels(tenant, period)
    assert (item["journey"], item["enrolled"], item["holdout"], item["rejected"]) == (nudge, 5, 2, 1)
    first, second = item["steps"]
    assert {k: first[k] for k in ("sent", "delivered", "opened", "clicked", "bounced", "converted", "revenue")} == {
        "sent": 4, "delivered": 3, "opened": 2, "clicked": 1, "bounced": 1, "converted": 2,
        "revenue": Decimal("80.00")}
    # T3's order came 8 days after the first email but 2 after the second: the second step converted it.
    assert {k: second[k] for k in ("sent", "delivered", "opened", "converted", "revenue")} == {
        "sent": 1, "delivered": 1, "opened": 0, "converted": 1, "revenue": Decimal("70.00")}
    assert first["open_rate"] == 0.5 and second["conversion_rate"] == 1.0


# --- the pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["home", "dashboard_funnels", "dashboard_feedback", "dashboard_programs"])
def test_every_dashboard_page_renders_for_a_viewer(tenant, shop, nudge, name):
    from django.urls import reverse

    viewer = client_for(make_user("vera", tenant, "viewer"))
    response = viewer.get(reverse(f"workspace:{name}", kwargs={"tenant": tenant.slug}),
                          {"from": "2026-04-01", "to": "2026-06-30"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "1 Apr 2026 – 30 Jun 2026 (91 days, Europe/Berlin)" in body
    assert 'id="dashboard-charts"' in body


def test_home_shows_the_figures_and_the_not_enough_data_reason(tenant, shop, nudge):
    page = client_for(make_user("vera", tenant, "viewer")).get(f"/app/{tenant.slug}/", {"from": "2026-04-01",
                                                                                      "to": "2026-06-30"})
    body = page.content.decode()
    assert '<span class="value" id="kpi-new-customers">10</span>' in body  # A B C E and the journey's customers
    assert "Not enough data yet: 2 customers in the holdout group, and a lift needs at least 50." in body


@pytest.mark.parametrize(("query", "message"), [
    ({"from": "2026-13-01"}, "'2026-13-01' is not a date for “from”: use YYYY-MM-DD, such as 2026-01-31."),
    ({"from": "2026-06-30", "to": "2026-04-01"}, "The period starts (2026-06-30) after it ends (2026-04-01): swap"),
    ({"from": "2020-01-01", "to": "2026-06-30"}, "Pick at most 1098 days; 2020-01-01 to 2026-06-30 is 2373."),
    ({"range": "forever"}, "'forever' is not a period: choose one of 30d, 90d, 180d, 365d, or two dates."),
    ({"to": "2026-06-30"}, "Choose the first day of the period (“from”)."),
])
def test_a_bad_period_is_a_400_that_says_what_to_fix(tenant, query, message):
    from django.utils.html import escape

    page = client_for(make_user("vera", tenant, "viewer")).get(f"/app/{tenant.slug}/", query)
    assert page.status_code == 400
    assert escape(message) in page.content.decode()
    assert 'id="dashboard-charts"' not in page.content.decode()


def test_the_default_period_is_the_last_90_days_in_the_stores_time_zone(tenant):
    page = client_for(make_user("vera", tenant, "viewer")).get(f"/app/{tenant.slug}/")
    assert page.status_code == 200
    assert "2 Apr 2026 – 30 Jun 2026 (90 days, Europe/Berlin)" in page.content.decode()


def test_lift_lists_running_journeys_with_a_holdout_and_journeys_that_held_customers_out(tenant, nudge, period):
    for name, status in (("Draft", "draft"), ("Live", "active"), ("Old", "archived")):
        Journey.objects.for_tenant(tenant).create(tenant=tenant, name=name, trigger="order_paid", status=status,
                                                  holdout_percent=10)
    nudge.status = "archived"  # archived since, but it held customers out in the period
    nudge.save()
    got = metrics_journeys.lifts(tenant, period, NOW)
    assert [lift.journey.name for lift in got] == ["Live", "Nudge"]
    assert got[0].verdict.reason == ("Not enough data yet: 0 customers in the holdout group, and a lift needs at "
                                     "least 50.")


def test_the_figures_are_the_same_under_row_level_security(tenant, shop, nudge, app_role):
    """As in production: the page runs as lifecycle_app, and every query (the raw SQL of the lift too)
    carries the store's scope."""
    page = client_for(make_user("vera", tenant, "viewer")).get(
        f"/app/{tenant.slug}/dashboard/journeys/", {"from": "2026-04-01", "to": "2026-06-30"})
    assert page.status_code == 200
    lift = page.context["lifts"][0]
    assert (lift.treated.customers, lift.treated.converted, lift.holdout.customers) == (4, 2, 2)
    assert [s["converted"] for s in page.context["journeys"][0]["steps"]] == [2, 1]
