"""One-click survey links: a GET never records, a person's click does, a scanner's burst does not."""

import datetime as dt
import re
import time

import pytest
from django.test import Client

from feedback.models import AnswerAttempt, SurveyRequest, SurveyResponse
from feedback.services import responses_settle_due
from lifecycle import clock
from lifecycle.links import make_token, read_token
from lifecycle.models import Event

from .helpers import NOON, customer, feedback_journey, nps_survey, score_links, send_feedback_email

pytestmark = pytest.mark.django_db
LATER = NOON + dt.timedelta(days=1, hours=2)


@pytest.fixture
def links(api, tenant):
    nps_survey(tenant)
    feedback_journey(tenant, "nps")
    message = send_feedback_email(api, tenant)
    return score_links(message)


def post(path: str, score, mode="confirm", client=None, **extra):
    """What the answer page's form (mode confirm) or its script (mode auto) sends, without cookies."""
    token = path.split("/")[2]
    data = {"request": read_token("survey", token)["r"], "mode": mode, **extra}
    if score is not None:
        data["score"] = score
    return (client or Client(enforce_csrf_checks=True)).post(f"/f/{token}", data)


def feedback_events(tenant) -> list[str]:
    return sorted(Event.objects.for_tenant(tenant).filter(type__startswith="feedback.").values_list("type", flat=True))


def test_the_email_has_eleven_signed_buttons(links, tenant):
    assert sorted(links) == list(range(11))
    [req] = SurveyRequest.objects.for_tenant(tenant)
    assert req.survey.kind == "nps" and req.delivery_id and req.journey_id
    assert all(path.startswith("/f/") and path.endswith(f"/{score}") for score, path in links.items())


def test_a_scanner_fetching_all_eleven_links_records_nothing(links, tenant):
    scanner = Client(HTTP_USER_AGENT="Mozilla/5.0 (compatible; LinkScanner/1.0)")
    with clock.frozen(LATER):
        for score, path in links.items():
            page = scanner.get(path)
            assert page.status_code == 200
            assert f'value="{score}" checked'.encode() in page.content
            assert scanner.head(path).status_code == 200
        responses_settle_due(now=LATER + dt.timedelta(minutes=5))

    assert SurveyResponse.objects.for_tenant(tenant).count() == 0
    assert AnswerAttempt.objects.for_tenant(tenant).count() == 0
    assert feedback_events(tenant) == []


def test_the_page_works_without_javascript_it_asks_to_confirm(links):
    page = Client().get(links[9])
    html = page.content.decode()
    assert '<form method="post"' in html and 'name="mode" value="confirm"' in html
    assert "Confirm my answer" in html and 'name="comment"' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "Acme Coffee" in html


def test_a_persons_click_is_recorded_provisionally_then_settles_with_its_follow_ups(links, tenant):
    with clock.frozen(LATER):
        answer = post(links[9], 9, mode="auto")
    assert answer.json() == {"state": "recorded", "message": "Got it, thank you! Add a comment if you like."}
    response = SurveyResponse.objects.for_tenant(tenant).get()
    assert (response.score, response.state, response.category) == (9, "provisional", "positive")
    assert feedback_events(tenant) == []  # nothing follows until the burst window has passed

    assert responses_settle_due(now=LATER + dt.timedelta(seconds=9)) == 0
    assert responses_settle_due(now=LATER + dt.timedelta(seconds=10)) == 1
    response.refresh_from_db()
    assert response.state == "final"
    assert feedback_events(tenant) == ["feedback.answered", "feedback.positive"]
    assert responses_settle_due(now=LATER + dt.timedelta(minutes=1)) == 0


def test_a_scanner_that_runs_the_page_posts_every_score_and_none_is_kept(links, tenant):
    start = LATER
    for score in range(11):
        with clock.frozen(start + dt.timedelta(milliseconds=300 * score)):
            result = post(links[score], score, mode="auto").json()["state"]
            assert result == ("recorded" if score == 0 else "held")

    responses_settle_due(now=start + dt.timedelta(minutes=1))
    assert SurveyResponse.objects.for_tenant(tenant).count() == 0
    attempts = AnswerAttempt.objects.for_tenant(tenant)
    assert attempts.count() == 11 and attempts.filter(automated=True).count() == 11
    assert feedback_events(tenant) == []

    # The person, later, picks 8 and confirms: that counts.
    with clock.frozen(start + dt.timedelta(minutes=2)):
        page = post(links[8], 8, mode="confirm", comment="Quick delivery")
    assert page.status_code == 200 and b"Thank you!" in page.content
    response = SurveyResponse.objects.for_tenant(tenant).get()
    assert (response.score, response.comment, response.state) == (8, "Quick delivery", "final")


def test_a_second_click_soon_after_with_another_score_needs_a_confirm(links, tenant):
    with clock.frozen(LATER):
        assert post(links[9], 9, mode="auto").json()["state"] == "recorded"
    with clock.frozen(LATER + dt.timedelta(seconds=4)):
        assert post(links[3], 3, mode="auto").json()["state"] == "held"
    assert SurveyResponse.objects.for_tenant(tenant).count() == 0


def test_the_same_score_twice_is_one_answer_and_a_double_submit_keeps_one_response(links, tenant):
    with clock.frozen(LATER):
        assert post(links[10], 10, mode="auto").json()["state"] == "recorded"
        assert post(links[10], 10, mode="auto").json()["state"] == "recorded"
        first = post(links[10], 10, comment="Love it")
        second = post(links[10], 10, comment="Love it")
    assert first.status_code == second.status_code == 200
    response = SurveyResponse.objects.for_tenant(tenant).get()
    assert (response.score, response.comment, response.state, response.edits) == (10, "Love it", "final", 0)
    assert feedback_events(tenant) == ["feedback.answered", "feedback.positive"]


def test_an_answer_can_be_edited_for_seven_days_then_the_survey_is_closed(links, tenant):
    with clock.frozen(LATER):
        post(links[7], 7)
    with clock.frozen(LATER + dt.timedelta(days=6)):
        assert post(links[7], 8, comment="Better now").status_code == 200
        # An auto click on an answered survey changes nothing; the page offers "Update my answer".
        assert post(links[2], 2, mode="auto").json()["state"] == "answered"
        assert b"Update my answer" in Client().get(links[2]).content
    response = SurveyResponse.objects.for_tenant(tenant).get()
    assert (response.score, response.comment, response.edits) == (8, "Better now", 1)

    with clock.frozen(LATER + dt.timedelta(days=8)):
        closed = post(links[1], 1)
        assert b"This survey is closed" in closed.content
        assert b"This survey is closed" in Client().get(links[1]).content
    response.refresh_from_db()
    assert response.score == 8
    assert Event.objects.for_tenant(tenant).filter(type="feedback.updated").count() == 1


def tamper(token: str) -> str:
    return token[:-2] + ("AA" if not token.endswith("AA") else "BB")


def test_bad_links_are_404_and_write_nothing(links, tenant, other_tenant):
    path = links[9]
    token = path.split("/")[2]
    req = SurveyRequest.objects.for_tenant(tenant).get()
    cust = customer(tenant)
    bad = [
        f"/f/{tamper(token)}/9",
        "/f/not-a-token/9",
        f"/f/{make_token('unsubscribe', tenant_id=tenant.pk, customer_id=cust.pk, r=req.pk)}/9",  # wrong purpose
        f"/f/{make_token('survey', tenant_id=tenant.pk, customer_id=cust.pk)}/9",  # names no request
        f"/f/{make_token('survey', tenant_id=other_tenant.pk, customer_id=cust.pk, r=req.pk)}/9",  # other tenant
        f"/f/{make_token('survey', tenant_id=tenant.pk, customer_id=cust.pk + 1000, r=req.pk)}/9",
    ]
    client = Client()
    for url in bad:
        assert client.get(url).status_code == 404, url
        assert client.post(url.rsplit("/", 1)[0], {"request": req.pk, "score": 9}).status_code == 404, url
    assert client.get(f"/f/{token}/11").status_code == 404  # off the scale
    # The right token without the request id it names in the form: 404 too.
    assert client.post(f"/f/{token}", {"score": 9}).status_code == 404
    assert client.post(f"/f/{token}", {"score": 9, "request": req.pk + 1}).status_code == 404
    # A survey token is worthless on the unsubscribe page.
    assert client.post(f"/u/{token}").status_code == 404
    assert SurveyResponse.objects.for_tenant(tenant).count() == 0
    assert AnswerAttempt.objects.for_tenant(tenant).count() == 0
    assert customer(tenant).unsubscribed_at is None


def test_an_out_of_range_post_is_refused_without_a_500(links, tenant):
    assert post(links[9], 42, mode="auto").status_code == 400
    page = post(links[9], "x")
    assert page.status_code == 400 and b"Please choose a score." in page.content
    assert SurveyResponse.objects.for_tenant(tenant).count() == 0


def test_links_expire_after_90_days_with_a_friendly_page(links, monkeypatch, tenant):
    real = time.time()
    monkeypatch.setattr("django.core.signing.time.time", lambda: real + 80 * 86400)
    assert Client().get(links[9]).status_code == 200
    monkeypatch.setattr("django.core.signing.time.time", lambda: real + 91 * 86400)
    expired = Client().get(links[9])
    assert expired.status_code == 410 and b"This link has expired" in expired.content
    request_id = str(SurveyRequest.objects.for_tenant(tenant).get().pk)
    assert Client().post(links[9].rsplit("/", 1)[0], {"request": request_id, "score": 9}).status_code == 410
    assert SurveyResponse.objects.for_tenant(tenant).count() == 0


def test_pages_speak_the_customers_language(api, tenant):
    nps_survey(tenant, translations={"de": {"question": "Würden Sie {store} empfehlen?"}})
    feedback_journey(tenant, "nps")
    links = score_links(send_feedback_email(api, tenant, customer={"locale": "de-DE"}))
    html = Client().get(links[9]).content.decode()
    assert '<html lang="de">' in html
    assert "Würden Sie Acme Coffee empfehlen?" in html and "Antwort bestätigen" in html
    assert "Äußerst wahrscheinlich" in html


def test_a_free_text_survey_links_to_a_comment_box_and_keeps_the_words(api, tenant):
    from feedback.models import Survey

    Survey.objects.for_tenant(tenant).create(tenant=tenant, key="ideas", name="Ideas", kind="text",
                                             question="What should we stock next?")
    feedback_journey(tenant, "ideas")
    message = send_feedback_email(api, tenant)
    assert "What should we stock next?" in message.body
    path = re.search(r'<a class="button"[^>]*href="http://127.0.0.1:8000(/f/[^"]+)"', message.alternatives[0][0]).group(1)
    page = Client().get(path)
    assert page.status_code == 200 and b'name="score"' not in page.content and b'name="comment"' in page.content
    with clock.frozen(LATER):
        assert post(path, "7", comment="Oat milk").status_code == 200  # a stray score is ignored
    response = SurveyResponse.objects.for_tenant(tenant).get()
    assert (response.score, response.comment, response.category, response.state) == (None, "Oat milk", "none", "final")
    assert feedback_events(tenant) == ["feedback.answered"]
