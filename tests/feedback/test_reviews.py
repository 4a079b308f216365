"""Reviews: every buyer of a delivered order is asked (no gating), moderation, the storefront API."""

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from feedback.models import Review, SurveyRequest, SurveyResponse
from feedback.selectors import review_gating_audit
from feedback.services import answer_submit, review_moderate
from lifecycle import clock
from lifecycle.models import Event

from .helpers import NOON, customer, feedback_journey, nps_survey, send_feedback_email
from .test_answers import LATER, post

pytestmark = pytest.mark.django_db


def review_links(message) -> list[str]:
    html = message.alternatives[0][0]
    return [u.removeprefix("http://127.0.0.1:8000")
            for u in re.findall(r'<a class="score"[^>]*href="([^"]+/[1-5])"', html)]


def test_a_detractor_is_asked_to_review_every_product_of_the_delivered_order(api, tenant):
    # Ada answered NPS 2 before: that never decides whether she is asked for a review.
    nps_survey(tenant)
    feedback_journey(tenant, "nps", name="NPS", entry_policy="once_per_customer")
    nps_links = send_feedback_email(api, tenant)
    with clock.frozen(LATER):
        post(re.search(r'href="http://127.0.0.1:8000(/f/[^"]+/2)"', nps_links.alternatives[0][0]).group(1), 2)
    assert SurveyResponse.objects.for_tenant(tenant).get().category == "negative"

    feedback_journey(tenant, "review", name="Reviews")
    message = send_feedback_email(api, tenant, at_time=NOON + dt.timedelta(days=40), external_id="1002")

    requests = SurveyRequest.objects.for_tenant(tenant).filter(survey__kind="review").order_by("pk")
    assert [(r.product.external_id, r.asked_because) for r in requests] == [
        ("p-beans", "delivered order #1002"), ("p-filter", "delivered order #1002")]
    assert len([link for link in review_links(message) if link.endswith("/5")]) == 2  # a row of stars per product
    assert "How would you rate House beans 1 kg?" in message.body
    assert review_gating_audit(tenant=tenant) == {
        "review_requests": 2, "by_nps_at_ask": {"detractor": 2, "passive": 0, "promoter": 0, "no_nps": 0}}


def test_the_review_path_never_reads_an_nps_answer(api, tenant, monkeypatch):
    """Belt and braces for the FTC rule: make every score lookup explode, then ask for reviews."""
    import feedback.selectors

    def forbidden(**kwargs):
        raise AssertionError("review requests must not consult scores")

    monkeypatch.setattr(feedback.selectors, "customer_latest_scores", forbidden)
    monkeypatch.setattr(feedback.selectors, "review_gating_audit", forbidden)
    feedback_journey(tenant, "review")
    send_feedback_email(api, tenant)
    assert SurveyRequest.objects.for_tenant(tenant).count() == 2


def write_review(tenant, product_external_id: str, rating: int, title: str, body: str, at) -> Review:
    req = SurveyRequest.objects.for_tenant(tenant).get(product__external_id=product_external_id)
    with clock.frozen(at):
        answer_submit(survey_request=req, score=rating, mode="confirm", comment=body, title=title)
    return Review.objects.for_tenant(tenant).get(response__request=req)


def test_a_review_is_written_from_the_email_moderated_and_served_to_the_storefront(api, tenant):
    feedback_journey(tenant, "review")
    message = send_feedback_email(api, tenant)
    beans_4 = next(link for link in review_links(message) if link.endswith("/4"))
    page = Client().get(beans_4)
    assert page.status_code == 200 and b'name="title"' in page.content
    with clock.frozen(LATER):
        thanks = post(beans_4, 4, title="Good beans", comment="Rich and fresh.")
    assert b"appears in the shop once we" in thanks.content

    review = Review.objects.for_tenant(tenant).get()
    assert (review.rating, review.title, review.body, review.status) == (4, "Good beans", "Rich and fresh.", "pending")
    assert review.verified_purchase and review.author_name == "Ada L."
    assert api.get("/api/v1/products/p-beans/reviews").json() == {
        "product_external_id": "p-beans", "count": 0, "average": None, "results": [], "next": None}

    review_moderate(review=review, action="approve", reply="Thank you, Ada!", by="mia")
    review_moderate(review=review, action="approve", by="mia")  # twice: review.approved once
    assert Event.objects.for_tenant(tenant).filter(type="review.approved").count() == 1
    other = write_review(tenant, "p-filter", 2, "Tears", "Paper too thin.", LATER)
    review_moderate(review=other, action="reject", reason="off-topic", by="mia")

    body = api.get("/api/v1/products/p-beans/reviews").json()
    assert (body["count"], body["average"]) == (1, 4.0)
    [served] = body["results"]
    assert served["title"] == "Good beans" and served["verified_purchase"] is True
    assert served["store_reply"] == "Thank you, Ada!" and served["author"] == "Ada L."
    assert api.get("/api/v1/products/p-filter/reviews").json()["count"] == 0


def test_reviews_come_back_paginated_newest_or_best_first_with_the_right_average(api, tenant):
    feedback_journey(tenant, "review")
    ratings = [5, 3, 4, 1, 5]
    reviews = []
    for n, rating in enumerate(ratings):
        send_feedback_email(api, tenant, at_time=NOON + dt.timedelta(days=n), external_id=f"10{n}",
                            customer={"external_id": f"c{n}", "email": f"c{n}@example.com"})
        req = SurveyRequest.objects.for_tenant(tenant).get(order__external_id=f"10{n}", product__external_id="p-beans")
        with clock.frozen(NOON + dt.timedelta(days=n, hours=30)):
            answer_submit(survey_request=req, score=rating, mode="confirm", comment=f"review {n}", title=f"t{n}")
        reviews.append(Review.objects.for_tenant(tenant).get(response__request=req))
    for review in reviews:
        review_moderate(review=review, action="approve")

    first = api.get("/api/v1/products/p-beans/reviews", {"page_size": 2}).json()
    assert (first["count"], first["average"]) == (5, 3.6)
    assert [r["body"] for r in first["results"]] == ["review 4", "review 3"]
    assert first["next"].endswith("page_size=2&page=2")
    best = api.get("/api/v1/products/p-beans/reviews", {"sort": "best"}).json()
    assert [r["rating"] for r in best["results"]] == [5, 5, 4, 3, 1] and best["next"] is None
    assert api.get("/api/v1/products/p-beans/reviews", {"sort": "worst"}).status_code == 400
    assert api.get("/api/v1/products/p-beans/reviews", {"page": "0"}).status_code == 400
    missing = api.get("/api/v1/products/nope/reviews")
    assert missing.status_code == 404 and missing.json()["code"] == "products.not_found"


def test_the_thank_you_page_lets_a_person_review_a_product_of_the_order(api, tenant):
    nps_survey(tenant)
    feedback_journey(tenant, "nps")
    message = send_feedback_email(api, tenant)
    nine = re.search(r'href="http://127.0.0.1:8000(/f/[^"]+/9)"', message.alternatives[0][0]).group(1)
    with clock.frozen(LATER):
        thanks = post(nine, 9).content.decode()
    review_url = re.search(r'<a href="http://127.0.0.1:8000(/f/[^"]+/review/\d+)">Review House beans', thanks).group(1)

    assert Client().get(review_url).status_code == 200
    assert not SurveyRequest.objects.for_tenant(tenant).filter(survey__kind="review").exists()  # GET wrote nothing
    req_id = SurveyRequest.objects.for_tenant(tenant).get().pk
    with clock.frozen(LATER):
        done = Client().post(review_url, {"request": req_id, "score": 5, "title": "Great", "comment": "Yes"})
    assert done.status_code == 200
    review = Review.objects.for_tenant(tenant).get()
    assert (review.product.external_id, review.rating, review.verified_purchase) == ("p-beans", 5, True)
    asked = SurveyRequest.objects.for_tenant(tenant).get(survey__kind="review")
    assert asked.asked_because == "offered after answering NPS (order #1001)"
    assert Client().get(review_url.rsplit("/", 1)[0] + "/999999").status_code == 404


def test_moderation_in_the_admin_rejects_only_with_a_reason(api, tenant):
    feedback_journey(tenant, "review")
    send_feedback_email(api, tenant)
    review = write_review(tenant, "p-beans", 2, "Meh", "Too bitter", LATER)
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    url = f"/admin/feedback/review/{review.pk}/change/"
    assert client.get(url).status_code == 200

    page = client.post(url, {"action": "reject", "rejection_reason": "", "store_reply": ""})
    assert page.status_code == 200 and b"Say why the review is rejected." in page.content
    client.post(url, {"action": "reject", "rejection_reason": "Contains a phone number", "store_reply": "Sorry!"})
    review.refresh_from_db()
    assert (review.status, review.rejection_reason, review.store_reply, review.moderated_by) == (
        "rejected", "Contains a phone number", "Sorry!", "root")

    client.post("/admin/feedback/review/", {"action": "approve_selected", "_selected_action": [review.pk]})
    review.refresh_from_db()
    assert review.status == "approved"
    assert customer(tenant).pk and len(mail.outbox) == 1  # only the review request email


def test_erasing_a_customer_blanks_their_words_in_feedback_too(api, tenant):
    from tests.journeys.helpers import process_events

    feedback_journey(tenant, "review")
    send_feedback_email(api, tenant)
    review = write_review(tenant, "p-beans", 5, "Ada's favourite", "Call me on 0151 123", LATER)
    review_moderate(review=review, action="approve")

    assert api.delete("/api/v1/customers/c1").status_code == 204
    process_events()
    process_events()  # a second pass changes nothing

    review.refresh_from_db()
    assert (review.title, review.body, review.author_name, review.status) == ("", "", "", "rejected")
    assert SurveyResponse.objects.for_tenant(tenant).get().comment == ""
    assert SurveyResponse.objects.for_tenant(tenant).get().score == 5  # anonymous, still counted
    assert api.get("/api/v1/products/p-beans/reviews").json()["count"] == 0
