"""What an answer sets off: the store's alert (once), feedback.negative / .positive, a recovery
journey, the thank-you page's next step, and the per-customer survey throttle."""

import datetime as dt
import http.server
import json
import threading

import pytest
from django.core import mail
from django.test import Client

from feedback.models import FeedbackAlert, Survey, SurveyRequest, SurveyResponse
from feedback.services import alert_deliver, responses_settle_due
from journeys.models import Delivery, Enrollment, Journey
from lifecycle import clock
from lifecycle.models import Event
from tests.journeys.helpers import make_journey, process_events
from tests.journeys.test_engine import send_due

from .helpers import (
    NOON,
    SUPPORT,
    customer,
    delivered_order,
    feedback_journey,
    nps_survey,
    score_links,
    send_feedback_email,
)
from .test_answers import LATER, post

pytestmark = pytest.mark.django_db


def test_a_3_alerts_the_store_once_and_starts_the_recovery_journey(api, tenant, django_capture_on_commit_callbacks):
    nps_survey(tenant)
    feedback_journey(tenant, "nps")
    make_journey(tenant, name="Recovery", trigger=Journey.Trigger.FEEDBACK_NEGATIVE,
                 steps=[("PT1H", "Sorry, can we put it right?")], message_class="transactional")
    links = score_links(send_feedback_email(api, tenant))
    sent_before = len(mail.outbox)

    with clock.frozen(LATER), django_capture_on_commit_callbacks(execute=True):
        assert post(links[3], 3, mode="auto").json()["state"] == "recorded"
    assert len(mail.outbox) == sent_before  # provisional: nothing follows yet
    with django_capture_on_commit_callbacks(execute=True):
        responses_settle_due(now=LATER + dt.timedelta(seconds=10))
    # The person adds a comment, and then edits the score: still one alert.
    with clock.frozen(LATER + dt.timedelta(minutes=1)), django_capture_on_commit_callbacks(execute=True):
        page = post(links[3], 3, comment="Beans arrived crushed")
        post(links[3], 2, comment="Beans arrived crushed")
    assert b"We&#x27;re sorry it wasn&#x27;t better." in page.content

    [alert_mail] = mail.outbox[sent_before:]
    assert alert_mail.to == [SUPPORT]
    assert alert_mail.subject == "Negative feedback: Ada Lovelace gave 3/10 (NPS)"
    assert "Orders: 1, spent 59.90 EUR" in alert_mail.body and "order #1001 (delivered)" in alert_mail.body
    assert alert_mail.reply_to == ["ada@example.com"]
    [alert] = FeedbackAlert.objects.for_tenant(tenant)
    assert (alert.state, alert.attempts, alert.webhook_url) == ("sent", 1, "")
    assert alert.payload["customer"]["order_count"] == 1 and alert.payload["orders"][0]["external_id"] == "1001"
    response = SurveyResponse.objects.for_tenant(tenant).get()
    assert (response.score, response.comment, response.edits) == (2, "Beans arrived crushed", 2)
    [negative] = Event.objects.for_tenant(tenant).filter(type="feedback.negative")
    assert negative.data["score"] == 3 and negative.order.external_id == "1001"
    assert alert_deliver(tenant_id=tenant.pk, alert_id=alert.pk) == "sent"  # a redelivered task sends nothing
    assert len(mail.outbox) == sent_before + 1

    with clock.frozen(LATER + dt.timedelta(minutes=2)):
        process_events()
    recovery = Enrollment.objects.for_tenant(tenant).get(journey__name="Recovery")
    assert recovery.state == "active" and recovery.order.external_id == "1001"
    assert send_due(LATER + dt.timedelta(hours=2)) == ["sent"]
    assert mail.outbox[-1].subject == "Sorry, can we put it right?"


def test_a_9_emits_feedback_positive_and_offers_a_review_and_sharing(api, tenant):
    nps_survey(tenant)
    feedback_journey(tenant, "nps")
    make_journey(tenant, name="Referral ask", trigger=Journey.Trigger.FEEDBACK_POSITIVE, steps=[("P1D", "Share?")])
    links = score_links(send_feedback_email(api, tenant))

    with clock.frozen(LATER):
        page = post(links[9], 9, comment="")
    html = page.content.decode()
    assert "Thank you!" in html
    assert 'id="next-review"' in html and "Review House beans 1 kg" in html and "Review Paper filters" in html
    # The share button opens the customer's referral page (/r/<signed token>, served by referrals).
    assert 'id="next-share"' in html and 'href="http://127.0.0.1:8000/r/' in html
    assert FeedbackAlert.objects.for_tenant(tenant).count() == 0
    assert Event.objects.for_tenant(tenant).filter(type="feedback.positive").count() == 1
    with clock.frozen(LATER):
        process_events()
    assert Enrollment.objects.for_tenant(tenant).get(journey__name="Referral ask").state == "active"


def test_a_detractor_is_still_offered_a_review_but_no_share_link(api, tenant):
    nps_survey(tenant, alert_email="")
    feedback_journey(tenant, "nps")
    links = score_links(send_feedback_email(api, tenant))
    with clock.frozen(LATER):
        html = post(links[1], 1).content.decode()
    assert 'id="next-review"' in html and 'id="next-share"' not in html
    # No survey address: the store's reply-to is not set either, so the alert is recorded as skipped.
    [alert] = FeedbackAlert.objects.for_tenant(tenant)
    assert alert.state == "skipped" and alert.last_error == "no support address or webhook URL set"


class Hook(http.server.BaseHTTPRequestHandler):
    statuses: list[int] = []
    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's hook name
        Hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(Hook.statuses.pop(0) if Hook.statuses else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Hook.statuses, Hook.bodies = [], []
    yield f"http://127.0.0.1:{server.server_port}/alerts"
    server.shutdown()


def _negative_answer(api, tenant, hook_url, capture):
    nps_survey(tenant, alert_email="", alert_webhook_url=hook_url)
    feedback_journey(tenant, "nps")
    links = score_links(send_feedback_email(api, tenant))
    with clock.frozen(LATER), capture(execute=False):
        post(links[4], 4, comment="Slow")
    return FeedbackAlert.objects.for_tenant(tenant).get()


def test_the_webhook_carries_the_customers_context_and_retries_only_transient_errors(
        api, tenant, hook, django_capture_on_commit_callbacks):
    alert = _negative_answer(api, tenant, hook, django_capture_on_commit_callbacks)
    Hook.statuses = [503, 200]

    assert alert_deliver(tenant_id=tenant.pk, alert_id=alert.pk) == "retry"
    alert.refresh_from_db()
    assert (alert.state, alert.attempts, alert.last_error) == ("pending", 1, "HTTP 503")
    assert alert_deliver(tenant_id=tenant.pk, alert_id=alert.pk) == "sent"
    assert alert_deliver(tenant_id=tenant.pk, alert_id=alert.pk) == "sent"
    assert len(Hook.bodies) == 2
    body = Hook.bodies[-1]
    assert body["type"] == "feedback.negative" and body["response"]["score"] == 4
    assert body["response"]["comment"] == "Slow"
    assert body["customer"]["email"] == "ada@example.com" and body["customer"]["total_spent"] == "59.90"
    assert [o["external_id"] for o in body["orders"]] == ["1001"]
    assert body["history"][0]["score"] == 4


def test_a_refused_webhook_fails_without_retrying(api, tenant, hook, django_capture_on_commit_callbacks):
    alert = _negative_answer(api, tenant, hook, django_capture_on_commit_callbacks)
    Hook.statuses = [410]
    assert alert_deliver(tenant_id=tenant.pk, alert_id=alert.pk) == "failed"
    assert alert_deliver(tenant_id=tenant.pk, alert_id=alert.pk) == "failed"
    assert len(Hook.bodies) == 1


def test_the_survey_throttle_defers_a_second_survey_it_never_drops_it(api, tenant):
    nps_survey(tenant, throttle_days=30)
    Survey.objects.for_tenant(tenant).create(tenant=tenant, key="csat", name="CSAT", kind="csat", throttle_days=30)
    feedback_journey(tenant, "nps", name="NPS after delivery")
    feedback_journey(tenant, "csat", name="CSAT after delivery", wait="P3D")
    send_feedback_email(api, tenant)

    assert send_due(NOON + dt.timedelta(days=3)) == ["deferred"]
    csat = Delivery.objects.for_tenant(tenant).get(journey__name="CSAT after delivery")
    assert csat.state == "deferred" and csat.reason == "survey throttle: one survey per 30 days"
    assert csat.due_at == NOON + dt.timedelta(days=31)
    assert send_due(NOON + dt.timedelta(days=31)) == ["sent"]
    assert SurveyRequest.objects.for_tenant(tenant).filter(survey__kind="csat").count() == 1


def test_a_feedback_step_naming_no_survey_is_skipped_with_its_reason(api, tenant):
    journey = feedback_journey(tenant, "no-such-survey")
    with clock.frozen(NOON):
        delivered_order(api)
        process_events()
    assert send_due(NOON + dt.timedelta(days=1)) == ["skipped"]
    delivery = Delivery.objects.for_tenant(tenant).get(journey=journey)
    assert delivery.reason.startswith("the feedback step names no survey")
    assert customer(tenant).pk and not SurveyRequest.objects.for_tenant(tenant).exists()


def test_a_kind_as_survey_key_works_before_the_store_made_one(api, tenant):
    feedback_journey(tenant, "csat")
    links = score_links(send_feedback_email(api, tenant))
    assert sorted(links) == [1, 2, 3, 4, 5]
    survey = Survey.objects.for_tenant(tenant).get()
    assert (survey.key, survey.kind, survey.throttle_days) == ("csat", "csat", 30)
    assert Client().get(links[5]).status_code == 200
