"""The built-in journey library: valid import JSON, installed once per store as drafts, every
email renders, and two journeys driven end to end through the engine."""

import datetime as dt
import json
import re

import pytest
from django.core import mail
from django.core.management import ManagementUtility
from django.test import Client

from feedback.models import SurveyRequest, SurveyResponse
from journeys.definition import JourneyIn
from journeys.enrollment import schedule_step
from journeys.io import journey_export, journey_import, library_install, library_keys, library_load
from journeys.models import Delivery, EmailTemplate, Enrollment, Journey, Step
from journeys.rendering import render_email
from lifecycle import clock
from lifecycle.errors import ServiceError
from lifecycle.models import Order, Product
from tests.factories import order_payload

from .helpers import at, make_journey, process_events
from .test_engine import NOON, paid_order, send_due

pytestmark = pytest.mark.django_db

KEYS = ["at-risk-rescue", "day-7-check-in", "delivery-and-unboxing", "detractor-follow-up", "first-use-tips",
        "loyalty-invite", "order-anniversary", "referral-invite", "refund-follow-up", "replenishment-reminder",
        "review-request", "support-help-content", "third-order-celebration", "underused-feature-nudge", "win-back"]


def counts(tenant) -> tuple[int, int, int]:
    return (Journey.objects.for_tenant(tenant).count(), Step.objects.for_tenant(tenant).count(),
            EmailTemplate.objects.for_tenant(tenant).count())


@pytest.fixture
def run(capsys, monkeypatch):
    """A manage.py command as a shell runs it: its exit code, stdout and stderr."""
    from django.db import connections

    monkeypatch.setattr(connections, "close_all", lambda: None)  # the test's transaction keeps its connection

    def _run(*argv):
        code = 0
        try:
            ManagementUtility(["manage.py", *argv]).execute()
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run


def test_the_library_has_the_post_purchase_arc():
    assert library_keys() == KEYS


@pytest.mark.parametrize("key", KEYS)
def test_every_library_file_imports_cleanly_and_round_trips(key, tenant, other_tenant):
    data = library_load(key)
    assert data.status is None  # installs as a draft

    installed = library_install(tenant=tenant, keys=[key])

    journey = installed.installed[key]
    assert (journey.status, journey.library_key) == ("draft", key)
    exported = journey_export(journey)
    copy, created = journey_import(tenant=other_tenant, data=JourneyIn.model_validate(exported))
    assert created and journey_export(copy) == exported


@pytest.mark.parametrize("key", KEYS)
def test_library_content_follows_the_house_rules(key):
    data = library_load(key)
    for step in data.steps:
        if step.kind == "condition":
            continue  # a branch sends nothing (its arms are the emails below)
        template = step.template
        # An email, or an email that uses a feature: a survey with one-click answers, the referral link.
        assert template is not None and step.kind in ("email", "feedback_request", "referral_invite")
        assert re.fullmatch(r"[A-Z][a-z]+, [a-z ]+", template.signature), template.signature  # "Mia, customer care"
        assert template.body.startswith("<p>Hi {{ first_name }},</p>")
        assert len(re.sub(r"<[^>]+>|\{[{%][^}]*[}%]\}", "", template.body)) < 700, "short"
        assert len(template.subject) <= 60 and template.preheader
    if data.message_class == "marketing" and data.trigger in ("order_delivered", "order_paid"):
        assert {"order.refunded"} & set(data.exit_events) or "order.placed" in data.exit_events


@pytest.mark.parametrize("key", KEYS)
def test_no_library_description_sends_a_workspace_user_to_the_import_format(key):
    """The descriptions are read in the workspace's library: they speak of what the builder shows,
    never of JSON, its field names (snake_case, dotted) or its durations."""
    description = library_load(key).description
    assert "JSON" not in description.upper()
    assert "{" not in description and "config" not in description
    assert re.findall(r"\b[a-z]+_[a-z_]+\b", description) == []  # max_order_count, paid_at, replace_running
    assert re.findall(r"\b[a-z]+\.[a-z_]+\b", description) == []  # filters.skus, order.placed
    assert re.findall(r"\bP\d+[DWM]\b", description) == []  # P30D


def test_the_library_uses_surveys_and_the_referral_link():
    steps = {key: library_load(key).steps[0] for key in ("review-request", "day-7-check-in", "referral-invite")}
    assert (steps["review-request"].kind, steps["review-request"].config) == ("feedback_request", {"survey": "review"})
    assert (steps["day-7-check-in"].kind, steps["day-7-check-in"].config) == ("feedback_request", {"survey": "ces"})
    assert steps["referral-invite"].kind == "referral_invite"
    assert "reply" not in steps["day-7-check-in"].template.body.lower()
    assert "{{ referral_url }}" in steps["referral-invite"].template.body
    assert "forward" not in steps["referral-invite"].template.body


def test_review_and_check_in_end_on_a_refund_or_a_new_order():
    for key in ("review-request", "day-7-check-in"):
        assert {"order.refunded", "order.placed"} <= set(library_load(key).exit_events)
    for key in ("win-back", "replenishment-reminder"):
        data = library_load(key)
        assert data.exit_events == ["order.placed"] and data.replace_running
        assert data.steps[0].wait_kind == "after_anchor" and data.steps[0].anchor == "paid_at"
    assert "replenishment days" in library_load("replenishment-reminder").steps[0].name
    transactional = sorted(k for k in KEYS if library_load(k).message_class == "transactional")
    assert transactional == ["delivery-and-unboxing", "detractor-follow-up", "refund-follow-up",
                             "support-help-content"]


def test_install_library_installs_every_journey_exactly_once(tenant, run):
    code, out, _ = run("install_library", "acme")

    assert code == 0
    result = json.loads(out)
    journeys = {j.library_key: j for j in Journey.objects.for_tenant(tenant)}
    assert result == {"installed": {key: journeys[key].pk for key in KEYS}, "skipped": {}}
    assert {j.status for j in journeys.values()} == {"draft"}
    before = counts(tenant)
    assert before == (15, 24, 19)  # journeys, steps (five of them splits), templates

    code, out, _ = run("install_library", "acme")

    assert code == 0
    assert json.loads(out) == {"installed": {}, "skipped": {
        key: f"already installed as '{journeys[key].name}'" for key in KEYS}}
    assert counts(tenant) == before


def test_install_library_only_some_and_unknown_keys(tenant, run):
    code, out, _ = run("install_library", "acme", "--only", "win-back", "review-request")
    assert code == 0
    assert sorted(json.loads(out)["installed"]) == ["review-request", "win-back"]
    assert counts(tenant) == (2, 3, 3)

    code, out, err = run("install_library", "acme", "--only", "win-back", "nps")
    assert (code, out) == (1, "")
    assert err.strip() == f"CommandError: 'nps' is not one of {', '.join(KEYS)}"
    assert counts(tenant) == (2, 3, 3)
    assert run("install_library", "nope")[2].strip() == "CommandError: no tenant with slug 'nope'"


def test_the_library_never_overwrites_a_marketers_journey(tenant):
    mine = make_journey(tenant, name="Review request", status="active")
    installed = library_install(tenant=tenant, keys=["win-back", "review-request"])
    Journey.objects.for_tenant(tenant).filter(library_key="win-back").update(name="Come back!")

    again = library_install(tenant=tenant)

    assert list(installed.installed) == ["win-back"]
    assert installed.skipped == {"review-request": "a journey named 'Review request' already exists"}
    assert again.skipped["win-back"] == "already installed as 'Come back!'"
    assert again.skipped["review-request"] == "a journey named 'Review request' already exists"
    assert len(again.installed) == len(KEYS) - 2
    mine.refresh_from_db()
    assert (mine.status, mine.library_key, Step.objects.for_tenant(tenant).filter(journey=mine).count()) == (
        "active", "", 1)


def test_library_install_is_all_or_nothing_for_unknown_keys(tenant):
    with pytest.raises(ServiceError) as error:
        library_install(tenant=tenant, keys=["win-back", "typo"])
    assert error.value.code == "journeys.unknown_library_key"
    assert counts(tenant) == (0, 0, 0)


# --- rendering ------------------------------------------------------------------------------


BEANS_PAGE, BEANS_IMAGE = "https://acme.example/beans", "https://cdn.acme.example/beans.jpg?w=160&h=160"
FILTERS_IMAGE = "https://cdn.acme.example/filters.jpg"


@pytest.fixture
def delivered_order(api, tenant):
    """Ada's order of two products, as the storefront sent it through the API: the beans with their
    page and image, the filters with an image only."""
    with clock.frozen(NOON):
        paid_order(api, external_id="O1", number="#1001",
                   customer={"external_id": "c1", "first_name": "Ada", "email": "ada@example.com", "locale": "en",
                             "marketing_consent": True},
                   lines=[{"product_external_id": "p-beans", "sku": "BEANS-1KG", "title": "House beans 1 kg",
                           "quantity": 2, "unit_price": "24.95", "product_url": BEANS_PAGE,
                           "product_image_url": BEANS_IMAGE},
                          {"product_external_id": "p-filter", "sku": "FILTER-100", "title": "Paper filters",
                           "quantity": 1, "unit_price": "15.00", "product_image_url": FILTERS_IMAGE}])
    products = {p.external_id: (p.url, p.image_url) for p in Product.objects.for_tenant(tenant)}
    assert products == {"p-beans": (BEANS_PAGE, BEANS_IMAGE), "p-filter": ("", FILTERS_IMAGE)}
    return Order.objects.for_tenant(tenant).get(external_id="O1")


@pytest.mark.parametrize("key", KEYS)
def test_every_library_email_renders(key, tenant, delivered_order):
    journey = library_install(tenant=tenant, keys=[key]).installed[key]
    enrollment = Enrollment.objects.for_tenant(tenant).create(
        tenant=tenant, journey=journey, customer=delivered_order.customer, order=delivered_order,
        state=Enrollment.State.ACTIVE, enrolled_at=NOON)

    for step in Step.objects.for_tenant(tenant).filter(journey=journey).exclude(kind="condition").select_related(
            "template"):
        with clock.frozen(NOON):
            delivery = schedule_step(enrollment=enrollment, step=step, previous_at=NOON)
        delivery = Delivery.objects.for_tenant(tenant).select_related(
            "customer__tenant", "enrollment__order", "step__template", "journey").get(pk=delivery.pk)

        email = render_email(delivery)

        assert "{" not in email.subject and "{{" not in email.html and "{%" not in email.text
        assert email.text.startswith("Hi Ada,"), email.text
        assert f"{step.template.signature}\nAcme Coffee" in email.text
        assert ("List-Unsubscribe" in email.headers) == (journey.message_class == "marketing")


# --- end to end -----------------------------------------------------------------------------


def activate(tenant, key) -> Journey:
    library_install(tenant=tenant, keys=[key])
    Journey.objects.for_tenant(tenant).filter(library_key=key).update(status="active")
    return Journey.objects.for_tenant(tenant).get(library_key=key)


def deliver(api, when: dt.datetime = NOON + dt.timedelta(days=2), at_: str = "2026-11-25T14:00:00Z"):
    with clock.frozen(when):
        assert api.post("/api/v1/orders/O1/delivery", {"delivered_at": at_}).status_code == 200
        process_events()


def links(html: str, pattern: str) -> list[str]:
    return re.findall(rf'href="({pattern})"', html)


def test_review_request_goes_out_fourteen_days_after_delivery(api, tenant, delivered_order):
    activate(tenant, "review-request")
    deliver(api)
    [delivery] = Delivery.objects.for_tenant(tenant)
    assert (delivery.state, delivery.due_at) == ("pending", at("2026-12-09T14:00:00+00:00"))

    assert send_due(at("2026-12-09T13:59:00+00:00")) == []
    assert send_due(at("2026-12-09T14:00:00+00:00")) == ["sent"]

    [message] = mail.outbox
    # The subject is under test (version B asks differently): the one this customer was drawn.
    version = delivery.step.template.version_for(delivery.step_id, delivery.customer_id)
    assert message.subject == {"A": "How are you finding House beans 1 kg, Paper filters?",
                               "B": "Two weeks in: what do you think of it?"}[version]
    assert message.to == ["ada@example.com"]
    html = message.alternatives[0][0]
    # Each product with its image; the one with a page links to it (the filters have none).
    assert re.search(r'<img src="https://cdn\.acme\.example/beans\.jpg\?w=160&amp;h=160" alt="House beans 1 kg"',
                     html)
    assert re.search(r'<img src="https://cdn\.acme\.example/filters\.jpg" alt="Paper filters"', html)
    assert re.search(r'<a href="https://acme\.example/beans"[^>]*>House beans 1 kg</a>', html)
    assert "https://acme.example/filters" not in html and ">Paper filters</a>" not in html
    # And one-click stars for each: 5 signed links per product, answered on our pages.
    stars = links(html, r"http://127\.0\.0\.1:8000/f/[^/\"]+/[1-5]")
    assert len(stars) == 10 and len({link.rsplit("/", 2)[1] for link in stars}) == 2
    assert "How would you rate House beans 1 kg?" in html and "How would you rate Paper filters?" in html
    body = message.body.split("\n\n--\n")[0]
    assert "- House beans 1 kg (https://acme.example/beans)" in body and "- Paper filters" in body, body[:800]
    assert body.startswith("Hi Ada,\n\nYou've had your order for two weeks now")
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert Enrollment.objects.for_tenant(tenant).get().state == "completed"

    # A mail scanner's GET of a star records nothing.
    assert Client().get(stars[4].removeprefix("http://127.0.0.1:8000")).status_code == 200
    assert not SurveyResponse.objects.for_tenant(tenant).exists()


def test_the_day_7_check_in_asks_its_ces_question_with_one_click_links(api, tenant, delivered_order):
    activate(tenant, "day-7-check-in")
    deliver(api)
    assert send_due(at("2026-12-02T14:00:00+00:00")) == ["sent"]

    [message] = mail.outbox
    html = message.alternatives[0][0]
    assert "How much effort did it take to get started?" in html
    scores = links(html, r"http://127\.0\.0\.1:8000/f/[^/\"]+/\d+")
    assert [link.rsplit("/", 1)[1] for link in scores] == ["1", "2", "3", "4", "5", "6", "7"]
    assert "reply with a number" not in message.body.lower()
    [request] = SurveyRequest.objects.for_tenant(tenant)
    assert (request.survey.kind, request.customer.email) == ("ces", "ada@example.com")

    token_path = scores[1].removeprefix("http://127.0.0.1:8000")
    # Signed: a token changed by one character is no link at all.
    token = token_path.split("/")[2]
    forged = token_path.replace(token, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert Client().get(forged).status_code == 404
    # A GET (a scanner, or the click itself before the page posts) records nothing...
    assert Client().get(token_path).status_code == 200
    assert not SurveyResponse.objects.for_tenant(tenant).exists()
    # ...the page's POST does.
    posted = Client().post(token_path.rsplit("/", 1)[0], {"request": str(request.pk), "score": "2"})
    assert posted.status_code == 200
    assert list(SurveyResponse.objects.for_tenant(tenant).values_list("score", flat=True)) == [2]


def test_the_referral_invitation_carries_the_customers_referral_link(api, tenant, delivered_order):
    from referrals.models import Program, ReferralCode
    from referrals.rendering import share_url

    Program.objects.for_tenant(tenant).create(tenant=tenant, active=True)
    activate(tenant, "referral-invite")
    deliver(api)
    assert send_due(at("2026-12-20T14:00:00+00:00")) == ["sent"]

    [message] = mail.outbox
    code = ReferralCode.objects.for_tenant(tenant).get(customer=delivered_order.customer)
    url = share_url(code, tenant)
    assert url.startswith("http://127.0.0.1:8000/r/")
    html = message.alternatives[0][0]
    assert re.search(rf'<a href="{re.escape(url)}"[^>]*>{re.escape(url)}</a>', html)
    assert f"<b>{code.code}</b>" in html and "10% off your first order" in html
    assert url in message.body
    assert "forward this email" not in message.body


def test_without_a_referral_programme_the_invitation_is_skipped_not_sent_without_a_link(api, tenant,
                                                                                       delivered_order):
    activate(tenant, "referral-invite")
    deliver(api)
    assert send_due(at("2026-12-20T14:00:00+00:00")) == ["skipped"]
    assert mail.outbox == []
    assert Delivery.objects.for_tenant(tenant).get().reason == "the store has no active referral program"


def test_a_new_order_ends_the_review_request(api, tenant, delivered_order):
    activate(tenant, "review-request")
    deliver(api)
    with clock.frozen(NOON + dt.timedelta(days=5)):
        paid_order(api, external_id="O2", customer={"external_id": "c1"}, placed_at="2026-11-28T09:00:00Z")
        process_events()

    assert send_due(at("2026-12-09T14:00:00+00:00")) == []
    enrollment = Enrollment.objects.for_tenant(tenant).get(order__external_id="O1")
    assert (enrollment.state, enrollment.reason) == ("exited", "exit: order.placed")
    assert mail.outbox == []


def test_delivery_and_unboxing_follows_shipping_and_delivery_without_marketing_consent(api, tenant):
    activate(tenant, "delivery-and-unboxing")
    with clock.frozen(NOON):
        paid_order(api, external_id="O1", number="#1001", customer={
            "external_id": "c1", "first_name": "Ada", "email": "ada@example.com", "marketing_consent": False})
        process_events()
    with clock.frozen(at("2026-11-24T10:00:00+00:00")):
        api.post("/api/v1/orders/O1/fulfillment", {"fulfilled_at": "2026-11-24T10:00:00Z"})
        process_events()

    assert send_due(at("2026-11-24T11:00:00+00:00")) == ["sent"]
    shipped = mail.outbox[-1]
    assert shipped.subject == "Order #1001 is on its way"
    assert "- 2 × House beans 1 kg\n\n- 1 × Paper filters" in shipped.body
    assert "List-Unsubscribe" not in shipped.extra_headers
    waiting = Delivery.objects.for_tenant(tenant).get(step__position=2)
    assert (waiting.state, waiting.waiting_for) == ("waiting", "order.delivered")

    with clock.frozen(at("2026-11-26T09:00:00+00:00")):
        api.post("/api/v1/orders/O1/delivery", {"delivered_at": "2026-11-26T09:00:00Z"})
        process_events()

    assert send_due(at("2026-11-26T11:00:00+00:00")) == ["sent"]
    assert [m.subject for m in mail.outbox] == ["Order #1001 is on its way", "It's arrived. Start here, Ada"]
    assert "Check everything is there: House beans 1 kg, Paper filters." in mail.outbox[1].body
    assert Enrollment.objects.for_tenant(tenant).get().state == "completed"


def test_the_support_journey_sends_the_help_of_the_contacts_topic(api, tenant):
    journey = activate(tenant, "support-help-content")
    with clock.frozen(NOON):
        for customer, topic in (("c1", "shipping"), ("c2", "returns"), ("c3", "billing")):
            assert api.post("/api/v1/events", {"type": "support.contacted", "customer": {
                "external_id": customer, "email": f"{customer}@example.com"}, "data": {"topic": topic}}).status_code < 300
        process_events()
    for hours in (1, 2):
        while send_due(NOON + dt.timedelta(hours=hours)):
            pass
    got = {m.to[0]: m.subject for m in mail.outbox}
    assert got == {"c1@example.com": "Where your order is, and how to check", "c2@example.com": "How returns work",
                   "c3@example.com": "Answers to what customers ask most"}
    assert set(journey.enrollments.values_list("state", flat=True)) == {"completed"}


def test_the_third_order_celebration_thanks_the_third_order_only(api, tenant):
    """And the split before the email is no email: the frequency cap does not hold the thank-you back."""
    activate(tenant, "third-order-celebration")
    with clock.frozen(NOON):
        for i in range(4):
            assert api.post("/api/v1/orders", order_payload(
                external_id=f"T{i}", placed_at=f"2026-11-1{i}T08:00:00Z",
                customer={"external_id": "fan", "email": "fan@example.com", "first_name": "Ada",
                          "marketing_consent": True})).status_code == 201
            process_events()
            while send_due(NOON):  # the split runs as the order comes, when its count is this order's
                pass
    while send_due(NOON + dt.timedelta(hours=3)):
        pass
    assert [m.subject for m in mail.outbox] == ["Three orders, Ada: thank you"]



def test_the_review_request_ships_with_a_subject_line_test(tenant):
    """Issue 17's library: the review request's subject is an A/B test from the install on; each customer
    gets one version, and the journey's A/B tests page counts it as a content test."""
    from journeys.abtests import is_content_test

    library_install(tenant=tenant, keys=["review-request"])
    step = Step.objects.for_tenant(tenant).select_related("template").get(journey__name="Review request")
    assert step.template.subject == "How are you finding {{ order.item_titles }}?"
    assert step.template.versions == [{"subject": "Two weeks in: what do you think of it?"}]
    assert is_content_test(step)
    drawn = {step.template.version_drawn(step.pk, customer_id) for customer_id in range(1, 41)}
    assert drawn == {"A", "B"}
    assert step.template.version_fields("B", "en")["subject"] == "Two weeks in: what do you think of it?"
    assert step.template.version_fields("A", "en")["subject"] == step.template.subject
