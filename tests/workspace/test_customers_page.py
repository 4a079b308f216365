"""The customer page a support agent opens: header, lifetime value, health, journeys, loyalty,
referrals and one timeline, built by the real engine (orders and events through the API, a
journey that enrolls, sends and hears an open back); then its two actions and who may use them."""

import datetime as dt
import re
import uuid
from decimal import Decimal

import pytest
from anymail.backends.test import EmailBackend as AnymailTestBackend
from anymail.signals import AnymailTrackingEvent
from django.urls import reverse

from feedback.models import Survey, SurveyRequest, SurveyResponse
from journeys.engagement import esp_event_record
from journeys.models import Delivery, Enrollment
from lifecycle import clock
from lifecycle.models import Customer, Event, Order
from loyalty.models import Program as LoyaltyProgram
from loyalty.services import points_award
from referrals.models import Referral, ReferralCode
from tests.factories import order_payload
from tests.journeys.helpers import at, make_journey, process_events
from tests.journeys.test_engine import send_due
from workspace import timeline

from .conftest import client_for, make_user

pytestmark = pytest.mark.django_db

NOON = at("2026-11-23T09:00:00+00:00")  # 10:00 in Berlin, the store's zone
NOW = at("2026-12-01T11:00:00+00:00")


class PostmarkLikeBackend(AnymailTestBackend):
    def get_esp_message_id(self, message):
        return str(uuid.uuid4())


@pytest.fixture(autouse=True)
def _esp(settings):
    settings.EMAIL_BACKEND = "tests.workspace.test_customers_page.PostmarkLikeBackend"


def opened(delivery: Delivery, when: dt.datetime) -> AnymailTrackingEvent:
    """An open, as anymail's Postmark webhook hands it to journeys.tracking."""
    return AnymailTrackingEvent(event_type="opened", message_id=delivery.esp_message_id, timestamp=when,
                                event_id=f"open-{delivery.pk}", recipient="ada@example.com",
                                metadata={"tenant_id": str(delivery.tenant_id), "delivery_id": str(delivery.pk)})


def order(api, external_id: str, placed_at: str, **overrides):
    customer = {"external_id": "ada-1", "email": "Ada@Example.com", "first_name": "Ada", "last_name": "Lovelace",
                "marketing_consent": True, **overrides.pop("customer", {})}
    response = api.post("/api/v1/orders", order_payload(external_id=external_id, number=f"#{external_id}",
                                                        customer=customer, placed_at=placed_at, **overrides))
    assert response.status_code == 201, response.content


def event(api, type_: str, when: dt.datetime, **data):
    response = api.post("/api/v1/events", {"type": type_, "customer": {"external_id": "ada-1"},
                                           "occurred_at": when.isoformat(), "data": data})
    assert response.status_code == 201, response.content


@pytest.fixture
def ada(api, tenant) -> Customer:
    """Two orders (one partly refunded), a journey that sent and was opened, one that turned her
    away, two support contacts, a product registration, an NPS of 6, points and a referral."""
    make_journey(tenant, name="Welcome", steps=[("P1D", "Setup tips"), ("P6D", "How is it going?")])
    make_journey(tenant, name="Big spenders", filters={"min_total": "100"})
    with clock.frozen(NOON):
        order(api, "O1", "2026-11-23T08:00:00Z")
        process_events()
    assert send_due(NOON + dt.timedelta(days=1)) == ["sent"]
    sent = Delivery.objects.for_tenant(tenant).get(state="sent")
    assert esp_event_record(esp_name="postmark", event=opened(sent, at("2026-11-24T10:00:00+00:00"))) == "recorded"
    with clock.frozen(at("2026-11-24T12:00:00+00:00")):
        assert api.post("/api/v1/orders/O1/refunds", {"external_id": "R1", "amount": "10.00",
                                                      "reason": "damaged bag"}).status_code == 201
    event(api, "product.registered", at("2026-11-24T08:00:00+00:00"), serial="GR-77")
    event(api, "support.contacted", at("2026-11-26T08:00:00+00:00"), channel="chat", topic="grinder noise")
    event(api, "support.contacted", at("2026-11-27T08:00:00+00:00"), channel="email")
    with clock.frozen(at("2026-11-25T08:00:00+00:00")):
        order(api, "O2", "2026-11-25T08:00:00Z", total="30.00", discount_total="0.00", discount_codes=[],
              lines=[{"product_external_id": "p-papers", "sku": "PAP-100", "title": "Paper filters", "quantity": 3,
                      "unit_price": "10.00"}])
    customer = Customer.objects.for_tenant(tenant).get(external_id="ada-1")

    survey = Survey.objects.for_tenant(tenant).create(tenant=tenant, key="nps", name="How likely to recommend",
                                                      kind=Survey.Kind.NPS)
    asked = SurveyRequest.objects.for_tenant(tenant).create(tenant=tenant, survey=survey, customer=customer,
                                                            asked_because="test", asked_at=at("2026-11-28T08:00:00Z"))
    SurveyResponse.objects.for_tenant(tenant).create(
        tenant=tenant, request=asked, survey=survey, customer=customer, score=6, comment="Grinder is loud",
        category=SurveyResponse.Category.NEGATIVE, state=SurveyResponse.State.FINAL,
        answered_at=at("2026-11-28T09:00:00Z"), finalized_at=at("2026-11-28T09:00:00Z"))

    LoyaltyProgram.objects.for_tenant(tenant).create(tenant=tenant)
    with clock.frozen(at("2026-11-29T08:00:00Z")):
        points_award(tenant=tenant, customer=customer, points=50, source="welcome", reason="Welcome bonus")

    order(api, "B1", "2026-11-30T08:00:00Z", total="40.00", customer={"external_id": "bob-1", "email": "bob@example.com"})
    bob = Customer.objects.for_tenant(tenant).get(external_id="bob-1")
    code = ReferralCode.objects.for_tenant(tenant).create(tenant=tenant, customer=customer, code="ADA-7K2")
    Referral.objects.for_tenant(tenant).create(
        tenant=tenant, code=code, advocate=customer, friend=bob, order=Order.objects.for_tenant(tenant).get(external_id="B1"),
        carrier=Referral.Carrier.DISCOUNT_CODE, state=Referral.State.CONVERTED, order_total=Decimal("40.00"),
        currency="EUR", converted_at=at("2026-11-30T08:05:00Z"), release_at=at("2026-12-30T08:05:00Z"))
    customer.refresh_from_db()
    return customer


def page(client, tenant, customer, **params):
    url = reverse("workspace:customer", kwargs={"tenant": tenant.slug, "customer_id": customer.pk})
    with clock.frozen(NOW):
        return client.get(url, params)


def text(html: str) -> str:
    """The page's words, one space between them."""
    words = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
    return re.sub(r" ([,.;:)])", r"\1", words)


def section(body: str, element_id: str) -> str:
    start = body.index(">", body.index(f'id="{element_id}"')) + 1
    return text(body[start:].split("</section>", 1)[0].split("</header>", 1)[0])


def timeline_titles(body: str) -> list[str]:
    items = re.findall(r'<li class="tl-item kind-(\w+)">.*?<p class="tl-title">(.*?)</p>', body, re.S)
    return [f"{kind}: {text(title)}" for kind, title in items]


def test_the_header_lifetime_value_and_health(as_viewer, tenant, ada):
    body = page(as_viewer, tenant, ada).content.decode()

    head = section(body, "customer-head")
    assert head.startswith("Ada Lovelace subscribed ada@example.com · id ada-1 · customer since")
    assert "Marketing consent: yes, since 2026-11-23 10:00 (api)." in head
    assert "Unsubscribed" not in head and "suppressed" not in head
    assert text(body.split('id="lifetime-value">', 1)[1].split("</div>\n</div>", 1)[0]) == (
        "Spent 89.90 EUR Refunded 10.00 EUR Net 79.90 EUR Orders 2 Average order 39.95 EUR")
    assert ada.total_spent == Decimal("79.90")
    assert section(body, "health") == (
        "At risk "
        "Last order: 6 days since the last order; usually every 2 days (2 orders). "
        "Latest NPS: 6 on 0–10: a detractor. "
        "Support: 2 support contacts in the last 30 days. "
        "Time to value: product.registered 1 day after the first order.")


def test_the_journeys_loyalty_and_referral_panels(as_viewer, tenant, ada):
    body = page(as_viewer, tenant, ada).content.decode()
    journeys = section(body, "journeys")
    assert "Big spenders active Not enrolled: filter: order total 59.90 is below 100" in journeys
    assert "Welcome active Step 2 due 2026-11-30 10:00" in journeys
    assert "Next: Step 2 due 2026-11-30 10:00" in journeys
    loyalty = section(body, "loyalty")
    assert "50 points available." in loyalty
    assert "Code: ADA-7K2" in loyalty
    assert "0 clicks, 1 referral (0 rewarded, 0 in review, 0 rejected)." in loyalty


def test_the_timeline_merges_everything_newest_first(as_viewer, tenant, ada):
    body = page(as_viewer, tenant, ada).content.decode()
    assert timeline_titles(body) == [
        "email: Welcome · step 2: Welcome 2 pending",
        "referral: Referred bob@example.com: order #B1, 40.00 EUR (code ADA-7K2) converted",
        "points: +50 points: Welcome bonus earn",
        "feedback: Answered How likely to recommend: 6 of 0–10 negative",
        "event: Contacted support",
        "event: Contacted support",
        "event: Order #O2 paid",
        "order: Order #O2: 30.00 EUR paid",
        "event: Refund on order #O1",
        "email: Welcome · step 1: Welcome 1 opened",
        "event: Registered a product",
        "journey: Not enrolled in “Big spenders” for order #O1 rejected",
        "journey: Entered “Welcome” for order #O1 active",
        "event: Became a customer",  # the API's clock said NOON; the order was placed at 08:00
        "event: Order #O1 paid",
        "order: Order #O1: 59.90 EUR, 10.00 refunded paid",
    ]
    words = section(body, "timeline")
    assert "Step 1 sent 2026-11-24 10:00; opened" in words  # the customer's zone: Berlin
    assert "Step 2 due 2026-11-30 10:00" in words
    assert "10.00 EUR — damaged bag" in words
    assert "filter: order total 59.90 is below 100" in words
    assert "channel chat topic grinder noise" in words
    assert "Grinder is loud" in words
    assert "2 × House beans 1 kg" in words and "3 × Paper filters" in words
    assert "Show older" not in words
    # The order rows link to the order page.
    o1 = Order.objects.for_tenant(tenant).get(external_id="O1")
    assert reverse("workspace:order", kwargs={"tenant": tenant.slug, "order_id": o1.pk}) in body


def test_the_timeline_pages_by_cursor_without_losing_or_repeating_ties(tenant, ada):
    """Sixty items at one instant (events, points, an order): the page boundary falls among equal times."""
    instant = at("2026-11-29T12:00:00Z")
    Event.objects.for_tenant(tenant).bulk_create([
        Event(tenant=tenant, customer=ada, type="feature.used", occurred_at=instant, data={"n": i}) for i in range(40)])
    with clock.frozen(instant):
        for i in range(20):
            points_award(tenant=tenant, customer=ada, points=1, source=f"tie-{i}", reason=f"tie {i}")
    everything = []
    before = ""
    pages = 0
    while True:
        got = timeline.timeline_page(tenant=tenant, customer=ada, before=before)
        pages += 1
        assert len(got.items) <= timeline.PAGE_SIZE
        everything += got.items
        if got.next_cursor is None:
            break
        before = got.next_cursor
    keys = [item.key for item in everything]
    assert pages == 2
    assert len(keys) == len(set(keys)) == 16 + 60
    assert keys == sorted(keys, reverse=True)
    assert [i.kind for i in everything if i.at == instant] == ["points"] * 20 + ["event"] * 40


def test_show_older_and_back(as_viewer, tenant, ada):
    Event.objects.for_tenant(tenant).bulk_create([
        Event(tenant=tenant, customer=ada, type="feature.used", occurred_at=at("2026-11-30T12:00:00Z") +
              dt.timedelta(minutes=i), data={"feature": f"f{i}"}) for i in range(timeline.PAGE_SIZE)])
    first = page(as_viewer, tenant, ada).content.decode()
    assert len(timeline_titles(first)) == timeline.PAGE_SIZE
    link = re.search(r'id="show-older" href="\?before=([^"#]+)#timeline"', first).group(1)
    second = page(as_viewer, tenant, ada, before=link).content.decode()
    titles = timeline_titles(second)
    assert titles[0] == "email: Welcome · step 2: Welcome 2 pending"
    assert titles[-1] == "order: Order #O1: 59.90 EUR, 10.00 refunded paid"
    assert len(titles) == 16 + timeline.PAGE_SIZE - timeline.PAGE_SIZE
    assert "← Back to the newest" in second
    assert 'id="show-older"' not in second


def test_a_damaged_timeline_link_is_a_400_that_shows_the_newest(as_viewer, tenant, ada):
    response = page(as_viewer, tenant, ada, before="bm90LWEtY3Vyc29y")
    assert response.status_code == 400
    body = response.content.decode()
    assert "That timeline link is damaged: showing the newest items instead." in body
    assert timeline_titles(body)[0] == "email: Welcome · step 2: Welcome 2 pending"


def test_the_page_costs_the_same_queries_however_long_the_history(as_viewer, tenant, ada, django_assert_max_num_queries):
    # Session, user, membership, customer; seven timeline sources and order lines; value, health,
    # journeys, loyalty and referral panels; the store switcher: 32 today.
    with django_assert_max_num_queries(34) as small:
        page(as_viewer, tenant, ada)
    Event.objects.for_tenant(tenant).bulk_create([
        Event(tenant=tenant, customer=ada, type="feature.used", occurred_at=NOON, data={}) for _ in range(500)])
    with clock.frozen(NOON):
        for i in range(30):
            points_award(tenant=tenant, customer=ada, points=1, source=f"many-{i}")
    with django_assert_max_num_queries(len(small.captured_queries)):
        page(as_viewer, tenant, ada)


def test_a_customer_with_nothing_yet(as_viewer, tenant):
    guest = Customer.objects.for_tenant(tenant).create(tenant=tenant, email="new@example.com")
    body = page(as_viewer, tenant, guest).content.decode()
    assert "guest (no customer id)" in body
    assert "Marketing consent: never stated." in section(body, "customer-head")
    assert section(body, "health") == (
        "Not enough to judge yet Support: No support contacts in the last 30 days. Time to value: No paid order yet. "
        "Last order: No paid order yet. Scores: No NPS, CSAT or CES answer yet.")
    assert "Nothing has happened to this customer yet." in body
    assert "The store runs no loyalty program." in body
    assert "No referral code yet." in body


# --- actions -----------------------------------------------------------------------------


def action(client, tenant, customer, name: str, data: dict | None = None):
    url = reverse(f"workspace:customer-{name}", kwargs={"tenant": tenant.slug, "customer_id": customer.pk})
    return client.post(url, data or {})


def state(customer: Customer) -> tuple:
    customer.refresh_from_db()
    events = Event.objects.for_tenant(customer.tenant_id).filter(
        customer=customer, type__in=["customer.unsubscribed", "customer.erased"]).count()
    return (customer.email, customer.marketing_consent, customer.unsubscribed_at, customer.erased_at, events)


@pytest.fixture
def owner_client(tenant):
    return client_for(make_user("olga", tenant, "owner"))


def test_a_viewer_sees_no_actions_and_each_post_is_a_403_that_changes_nothing(as_viewer, tenant, ada):
    body = page(as_viewer, tenant, ada).content.decode()
    assert 'id="actions"' not in body
    assert "Unsubscribe from marketing" not in body and "Erase" not in body
    before = state(ada)
    for name, data in (("unsubscribe", {"confirm": "yes"}), ("erase", {"confirmation": "ada@example.com"})):
        response = action(as_viewer, tenant, ada, name, data)
        assert response.status_code == 403
        assert "you can look" in response.content.decode()
    assert state(ada) == before


def test_a_marketer_unsubscribes_after_confirming_but_cannot_erase(as_marketer, tenant, ada):
    body = page(as_marketer, tenant, ada).content.decode()
    assert "Unsubscribe from marketing email…" in body
    assert "Erase this customer" not in body
    before = state(ada)

    unconfirmed = action(as_marketer, tenant, ada, "unsubscribe")
    assert unconfirmed.status_code == 400
    assert "Confirm the unsubscribe with its button: nothing was changed." in unconfirmed.content.decode()
    assert state(ada) == before

    refused = action(as_marketer, tenant, ada, "erase", {"confirmation": "ada@example.com"})
    assert refused.status_code == 403
    assert "this needs an owner" in refused.content.decode()
    assert state(ada) == before

    with clock.frozen(NOW):
        done = action(as_marketer, tenant, ada, "unsubscribe", {"confirm": "yes"})
    assert done.status_code == 302
    email, consent, unsubscribed_at, erased_at, events = state(ada)
    assert (email, consent, unsubscribed_at, erased_at, events) == ("ada@example.com", False, NOW, None, 1)
    assert ada.consent_source == Customer.ConsentSource.ADMIN
    unsubscribed = Event.objects.for_tenant(tenant).get(customer=ada, type="customer.unsubscribed")
    assert unsubscribed.data == {"source": "admin", "detail": "by mara in the workspace"}
    after = page(as_marketer, tenant, ada).content.decode()
    assert "is unsubscribed from marketing email." in after
    assert "Unsubscribed from marketing email 2026-12-01 12:00 (through admin)." in after
    assert "Already unsubscribed from marketing email." in after
    # Again: nothing changes.
    assert action(as_marketer, tenant, ada, "unsubscribe", {"confirm": "yes"}).status_code == 302
    assert state(ada)[4] == 1


def test_an_owner_erases_only_with_the_typed_address(owner_client, tenant, ada):
    body = page(owner_client, tenant, ada).content.decode()
    assert "Type <strong>ada@example.com</strong> to confirm" in body
    before = state(ada)
    for typed in ("", "bob@example.com", "ada@example"):
        response = action(owner_client, tenant, ada, "erase", {"confirmation": typed})
        assert response.status_code == 400
        assert "Type ada@example.com exactly to confirm" in response.content.decode()
        assert "nothing was erased." in response.content.decode()
        assert state(ada) == before

    with clock.frozen(NOW):
        response = action(owner_client, tenant, ada, "erase", {"confirmation": " ADA@example.com "})
    assert response.status_code == 302
    ada.refresh_from_db()
    assert (ada.email, ada.external_id, ada.first_name, ada.erased_at, ada.suppression_reason) == (
        "", None, "", NOW, "erased")
    assert Event.objects.for_tenant(tenant).filter(customer=ada, type="customer.erased").count() == 1
    after = page(owner_client, tenant, ada).content.decode()
    assert f"Erased customer #{ada.pk}" in after
    assert 'id="actions"' not in after
    # A second erase (another tab) changes nothing and fails nothing.
    assert action(owner_client, tenant, ada, "erase", {"confirmation": "whatever"}).status_code == 302
    assert Event.objects.for_tenant(tenant).filter(customer=ada, type="customer.erased").count() == 1


def test_an_owner_erases_a_guest_who_has_no_customer_id(owner_client, tenant):
    guest = Customer.objects.for_tenant(tenant).create(tenant=tenant, email="guest@example.com")
    response = action(owner_client, tenant, guest, "erase", {"confirmation": "guest@example.com"})
    assert response.status_code == 302
    guest.refresh_from_db()
    assert (guest.email, guest.erased_at is not None) == ("", True)
    # …and only that guest.
    assert not Customer.objects.for_tenant(tenant).filter(erased_at__isnull=False).exclude(pk=guest.pk).exists()


def test_actions_on_another_stores_customer_are_a_404_for_its_owner(tenant, other_tenant, ada):
    globex_owner = client_for(make_user("gus", other_tenant, "owner"))
    before = state(ada)
    for name, data in (("unsubscribe", {"confirm": "yes"}), ("erase", {"confirmation": "ada@example.com"})):
        url = reverse(f"workspace:customer-{name}", kwargs={"tenant": other_tenant.slug, "customer_id": ada.pk})
        assert globex_owner.post(url, data).status_code == 404
    assert state(ada) == before


def test_enrollments_of_the_customer_are_the_engines(tenant, ada):
    # The fixture's journeys really ran: one decision each, from the order.paid of O1.
    decisions = sorted(Enrollment.objects.for_tenant(tenant).filter(customer=ada).values_list("state", flat=True))
    assert decisions == ["active", "rejected"]
