"""The preference centre (issue 18, item 4): a customer turns kinds of marketing email off and on from
the link in an email's footer, and the send gate honours it. A GET never changes anything, the POST
needs the page's CSRF token, a tampered, foreign or expired link is a 4xx that writes nothing, and
unsubscribing from everything and subscribing again happen there too."""

import datetime as dt
import re
import time

import pytest
from django.core import mail
from django.test import Client

import feedback.i18n
from journeys import rendering
from journeys.models import Delivery, Journey
from lifecycle import clock
from lifecycle.links import make_token
from lifecycle.models import Customer, Event
from lifecycle.preference_words import STRINGS
from lifecycle.preferences import Category, categories_off, customer_preferences_set
from tests.factories import order_payload

from .helpers import at, make_journey, process_events
from .test_engine import send_due

pytestmark = pytest.mark.django_db
NOON = at("2026-11-23T09:00:00+00:00")  # 10:00 in Berlin: outside quiet hours
BASE = "http://127.0.0.1:8000"


@pytest.fixture
def journeys(tenant) -> dict[str, Journey]:
    """An offers journey (day 1, day 5) and a tips journey (day 2), both on a paid order."""
    return {
        "offers": make_journey(tenant, name="Restock", category=Category.OFFERS,
                               steps=[("P1D", "Offer one"), ("P4D", "Offer two")]),
        "tips": make_journey(tenant, name="Tips", category=Category.TIPS, steps=[("P2D", "Tip one")]),
    }


@pytest.fixture
def ada(api, tenant, journeys) -> Customer:
    with clock.frozen(NOON):
        assert api.post("/api/v1/orders", order_payload(customer={
            "external_id": "c1", "email": "ada@example.com", "first_name": "Ada", "marketing_consent": True,
            "locale": "en"})).status_code == 201
        process_events()
    return Customer.objects.for_tenant(tenant).get(external_id="c1")


def page_path(customer) -> str:
    return f"/u/{make_token('unsubscribe', tenant_id=customer.tenant_id, customer_id=customer.pk)}/preferences"


def open_page(client: Client, path: str):
    """GET the page as a person's browser does: the form's CSRF token comes with it."""
    response = client.get(path)
    assert response.status_code == 200, response.content[:300]
    return response, re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())[1]


def choose(customer, *, on, action="save") -> Client:
    """Open the page, tick `on`, press `action`."""
    client = Client(enforce_csrf_checks=True)
    _, csrf = open_page(client, page_path(customer))
    response = client.post(page_path(customer), {"csrfmiddlewaretoken": csrf, "action": action,
                                                 "categories": list(on)})
    assert response.status_code == 303, response.content[:300]
    return client


def state_of(customer) -> tuple:
    customer.refresh_from_db()
    return (customer.email_preferences, customer.marketing_consent, customer.unsubscribed_at, customer.consent_source)


def preference_events(tenant) -> list[dict]:
    return [e.data for e in Event.objects.for_tenant(tenant).filter(type="customer.preferences_changed").order_by("pk")]


def delivery(tenant, journey, position) -> Delivery:
    return Delivery.objects.for_tenant(tenant).get(journey=journey, step__position=position)


# --- the gate -----------------------------------------------------------------------------------


def test_an_offer_is_skipped_with_its_reason_while_tips_go_and_turning_offers_on_lets_the_next_one_go(
        api, tenant, journeys, ada):
    choose(ada, on=["tips", "reviews", "loyalty"])
    assert categories_off(Customer.objects.for_tenant(tenant).get(pk=ada.pk)) == ["offers"]

    assert send_due(NOON + dt.timedelta(days=1)) == ["skipped"]
    offer = delivery(tenant, journeys["offers"], 1)
    assert (offer.state, offer.reason, offer.sent_at, offer.message_id) == (
        "skipped", "preferences: offers turned off", None, "")
    assert mail.outbox == []
    # The explain view says why.
    [item] = api.get("/api/v1/customers/c1/journeys", {"journey": journeys["offers"].pk}).json()["journeys"]
    first = item["enrollments"][0]["steps"][0]
    assert (first["state"], first["reason"]) == ("skipped", "preferences: offers turned off")
    assert first["summary"] == "Step 1 skipped: preferences: offers turned off"

    assert send_due(NOON + dt.timedelta(days=2)) == ["sent"]
    assert [m.subject for m in mail.outbox] == ["Tip one"]
    assert delivery(tenant, journeys["tips"], 1).state == "sent"

    choose(ada, on=["tips", "reviews", "offers", "loyalty"])
    assert send_due(NOON + dt.timedelta(days=5)) == ["sent"]
    assert [m.subject for m in mail.outbox] == ["Tip one", "Offer two"]
    assert delivery(tenant, journeys["offers"], 2).state == "sent"


def test_transactional_email_is_never_held_back_by_categories(tenant, api):
    make_journey(tenant, name="Delivery info", category=Category.OFFERS,
                 message_class=Journey.MessageClass.TRANSACTIONAL, steps=[("P1D", "Your parcel")])
    with clock.frozen(NOON):
        api.post("/api/v1/orders", order_payload(customer={"external_id": "c1", "email": "ada@example.com",
                                                           "marketing_consent": True}))
        process_events()
    customer = Customer.objects.for_tenant(tenant).get()
    customer_preferences_set(customer=customer, on=set())

    assert send_due(NOON + dt.timedelta(days=1)) == ["sent"]
    assert [m.subject for m in mail.outbox] == ["Your parcel"]


def test_the_footer_links_the_preference_page_beside_the_rfc_8058_unsubscribe(tenant, journeys, ada):
    send_due(NOON + dt.timedelta(days=1))
    [message] = mail.outbox
    html = message.alternatives[0][0]
    unsubscribe = message.extra_headers["List-Unsubscribe"].split(">")[0].removeprefix("<")
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f'href="{unsubscribe}/preferences"' in html and f'href="{unsubscribe}"' in html
    assert f"Choose which emails you get: {unsubscribe}/preferences\nUnsubscribe: {unsubscribe}" in message.body
    # The store's layout, rendered once and filled per email, still cuts at both links (not rendered whole).
    assert rendering._layout("Acme Coffee", "Mia from Acme", ada.tenant.postal_address, True) is not None
    # The link opens this customer's page.
    page = Client().get(unsubscribe.removeprefix(BASE) + "/preferences")
    assert page.status_code == 200 and b"Choose what ada@example.com gets from us." in page.content


# --- the page -----------------------------------------------------------------------------------


def test_a_get_or_head_shows_the_choices_and_changes_nothing(tenant, ada):
    customer_preferences_set(customer=ada, on={"tips", "reviews", "loyalty"})
    before, events = state_of(ada), Event.objects.for_tenant(tenant).count()
    client = Client()
    for _ in range(3):
        response = client.get(page_path(ada))
        assert client.head(page_path(ada)).status_code == 200
    body = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="en">' in body and "Your emails from Acme Coffee" in body
    ticked = re.findall(r'<input type="checkbox" name="categories" value="(\w+)" id="category-\w+"( checked)?>', body)
    assert ticked == [("tips", " checked"), ("reviews", " checked"), ("offers", ""), ("loyalty", " checked")]
    assert 'value="save"' in body and 'value="unsubscribe_all"' in body and 'value="subscribe"' not in body
    assert state_of(ada) == before and Event.objects.for_tenant(tenant).count() == events


def test_each_change_is_one_event_saying_what_changed_and_no_change_writes_nothing(tenant, ada):
    choose(ada, on=["tips", "loyalty"])
    choose(ada, on=["tips", "loyalty"])  # the same again
    choose(ada, on=["tips", "offers", "loyalty"])

    assert state_of(ada)[0] == {"reviews": False}
    assert preference_events(tenant) == [
        {"off": ["reviews", "offers"], "turned_off": ["reviews", "offers"], "turned_on": [], "subscribed": False,
         "source": "preferences"},
        {"off": ["reviews"], "turned_off": [], "turned_on": ["offers"], "subscribed": False, "source": "preferences"},
    ]


def test_the_saved_page_says_so_and_a_reload_does_not_post_again(tenant, ada):
    client = choose(ada, on=["tips"])
    saved = client.get(page_path(ada) + "?done=saved")
    assert "Saved. Your next email follows these choices." in saved.content.decode()
    assert len(preference_events(tenant)) == 1


def test_a_post_without_the_pages_csrf_token_is_refused_and_writes_nothing(tenant, ada):
    before, events = state_of(ada), Event.objects.for_tenant(tenant).count()
    response = Client(enforce_csrf_checks=True).post(page_path(ada), {"action": "unsubscribe_all"})
    assert response.status_code == 403
    response = Client(enforce_csrf_checks=True).post(page_path(ada), {"action": "save", "categories": ["tips"]})
    assert response.status_code == 403
    assert state_of(ada) == before and Event.objects.for_tenant(tenant).count() == events


@pytest.mark.parametrize(("form", "message"), [
    ({"action": "save", "categories": ["tips", "newsletters"]}, "We don't know one of those choices"),
    ({"action": "delete", "categories": ["tips"]}, "Please use one of the buttons on this page."),
    ({"categories": ["tips"]}, "Please use one of the buttons on this page."),
])
def test_a_bad_form_is_a_400_that_says_what_to_do_and_writes_nothing(tenant, ada, form, message):
    before, events = state_of(ada), Event.objects.for_tenant(tenant).count()
    client = Client(enforce_csrf_checks=True)
    _, csrf = open_page(client, page_path(ada))
    response = client.post(page_path(ada), {"csrfmiddlewaretoken": csrf, **form})
    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'")
    assert state_of(ada) == before and Event.objects.for_tenant(tenant).count() == events


def test_unsubscribe_from_everything_then_subscribe_again_from_the_page(tenant, journeys, ada):
    choose(ada, on=["tips", "reviews", "offers", "loyalty"], action="unsubscribe_all")
    _, consent, unsubscribed_at, source = state_of(ada)
    assert (consent, unsubscribed_at is not None, source) == (False, True, "unsubscribe")
    [left] = Event.objects.for_tenant(tenant).filter(type="customer.unsubscribed")
    assert left.data == {"source": "unsubscribe", "detail": "preference page"}
    assert send_due(NOON + dt.timedelta(days=1)) == ["skipped"]
    assert delivery(tenant, journeys["offers"], 1).reason == "unsubscribed from marketing email"

    page = Client().get(page_path(ada)).content.decode()
    assert "You get no marketing email from Acme Coffee at the moment." in page
    assert 'value="subscribe"' in page and 'value="unsubscribe_all"' not in page

    at_resubscribe = NOON + dt.timedelta(days=1, hours=2)
    with clock.frozen(at_resubscribe):
        choose(ada, on=["tips", "loyalty"], action="subscribe")
    assert state_of(ada) == ({"reviews": False, "offers": False}, True, None, "preferences")
    ada.refresh_from_db()
    assert ada.consent_updated_at == at_resubscribe
    assert preference_events(tenant) == [{"off": ["reviews", "offers"], "turned_off": ["reviews", "offers"],
                                          "turned_on": [], "subscribed": True, "source": "preferences"}]
    assert send_due(NOON + dt.timedelta(days=2)) == ["sent"]  # tips again
    assert send_due(NOON + dt.timedelta(days=5)) == ["skipped"]  # offers stay off
    assert delivery(tenant, journeys["offers"], 2).reason == "preferences: offers turned off"


def test_the_unsubscribed_page_offers_the_way_back(ada):
    token = page_path(ada).split("/")[2]
    done = Client().post(f"/u/{token}", data="List-Unsubscribe=One-Click",
                         content_type="application/x-www-form-urlencoded")
    assert f'href="/u/{token}/preferences"' in done.content.decode()


# --- links that are not this customer's ---------------------------------------------------------


def test_a_tampered_token_or_one_for_another_purpose_is_a_404_and_writes_nothing(tenant, ada):
    token = page_path(ada).split("/")[2]
    payload, stamp, signature = token.rsplit(":", 2)
    bad = [f"{payload}:{stamp}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}", "nonsense",
           make_token("survey", tenant_id=tenant.pk, customer_id=ada.pk),
           make_token("loyalty", tenant_id=tenant.pk, customer_id=ada.pk)]
    before, events = state_of(ada), Event.objects.for_tenant(tenant).count()
    for token in bad:
        assert Client().get(f"/u/{token}/preferences").status_code == 404
        assert Client().post(f"/u/{token}/preferences", {"action": "unsubscribe_all"}).status_code == 404
    assert state_of(ada) == before and Event.objects.for_tenant(tenant).count() == events


def test_a_link_signed_for_one_store_cannot_read_or_change_a_customer_of_another(tenant, ada, other_api,
                                                                                 other_tenant):
    with clock.frozen(NOON):
        other_api.post("/api/v1/orders", order_payload(customer={"external_id": "g1", "email": "gus@example.org",
                                                                 "marketing_consent": True}))
    gus = Customer.objects.for_tenant(other_tenant).get()
    foreign = [make_token("unsubscribe", tenant_id=other_tenant.pk, customer_id=ada.pk),
               make_token("unsubscribe", tenant_id=tenant.pk, customer_id=gus.pk)]
    before = (state_of(ada), state_of(gus))
    events = (Event.objects.for_tenant(tenant).count(), Event.objects.for_tenant(other_tenant).count())
    missing = Client().get("/u/nonsense/preferences").content
    for token in foreign:
        response = Client().get(f"/u/{token}/preferences")
        assert response.status_code == 404 and response.content == missing
        assert b"ada@example.com" not in response.content and b"gus@example.org" not in response.content
        for action in ("save", "subscribe", "unsubscribe_all"):
            assert Client().post(f"/u/{token}/preferences", {"action": action}).status_code == 404
    assert (state_of(ada), state_of(gus)) == before
    assert (Event.objects.for_tenant(tenant).count(), Event.objects.for_tenant(other_tenant).count()) == events


def test_an_expired_link_gets_a_friendly_410_and_writes_nothing(tenant, ada, monkeypatch):
    path = page_path(ada)
    before = state_of(ada)
    real = time.time()
    monkeypatch.setattr("django.core.signing.time.time", lambda: real + 400 * 86400)
    for response in (Client().get(path), Client().post(path, {"action": "unsubscribe_all"})):
        assert response.status_code == 410
        assert b"This link has expired" in response.content
    assert state_of(ada) == before


# --- languages ----------------------------------------------------------------------------------


def test_the_page_speaks_every_language_the_other_shopper_pages_do(tenant, ada):
    assert set(STRINGS) == set(feedback.i18n.STRINGS)
    for lang, table in STRINGS.items():
        assert set(table) == set(STRINGS["en"]), lang

    Customer.objects.for_tenant(tenant).filter(pk=ada.pk).update(locale="de-AT")
    body = Client().get(page_path(ada)).content.decode()
    assert '<html lang="de">' in body
    assert "Ihre E-Mails von Acme Coffee" in body and "Angebote" in body and "Auswahl speichern" in body
    assert "Offers" not in body


def test_a_language_the_pages_do_not_speak_reads_in_english(tenant, ada):
    Customer.objects.for_tenant(tenant).filter(pk=ada.pk).update(locale="fi")
    body = Client().get(page_path(ada)).content.decode()
    assert '<html lang="en">' in body and "Save my choices" in body
