"""The store's review rules decide on arrival: moderation off publishes every review, the auto-publish rule
publishes only what meets it (stars, no link), the rest wait; a published review earns review.approved once."""

import pytest

from feedback.configure import review_settings_save
from feedback.models import Review, ReviewSettings
from feedback.moderation import AUTO_PUBLISHER
from feedback.services import review_moderate
from lifecycle.models import Event

from .helpers import feedback_journey, send_feedback_email
from .test_answers import LATER
from .test_reviews import write_review

pytestmark = pytest.mark.django_db


def rules(tenant, **values):
    full = {"moderation": True, "auto_publish_min_rating": None, "auto_publish_without_links": True, **values}
    review_settings_save(tenant=tenant, values=full, by="olivia")


def approved_events(tenant) -> list[int]:
    return list(Event.objects.for_tenant(tenant).filter(type="review.approved").values_list("data__review_id", flat=True))


def test_with_no_settings_every_review_waits_for_a_person(api, tenant):
    feedback_journey(tenant, "review")
    send_feedback_email(api, tenant)
    review = write_review(tenant, "p-beans", 5, "Great", "Lovely.", LATER)
    assert (review.status, review.moderated_by) == ("pending", "")
    assert approved_events(tenant) == []
    assert not ReviewSettings.objects.for_tenant(tenant).exists()


def test_the_auto_publish_rule_publishes_what_meets_it_and_holds_the_rest(api, tenant):
    rules(tenant, auto_publish_min_rating=4)
    feedback_journey(tenant, "review")
    send_feedback_email(api, tenant)
    good = write_review(tenant, "p-beans", 4, "Good beans", "Rich and fresh.", LATER)
    linked = write_review(tenant, "p-filter", 5, "Best", "Cheaper at www.cheap-filters.example.com", LATER)
    assert (good.status, good.moderated_by) == ("approved", AUTO_PUBLISHER)
    assert (linked.status, linked.moderated_by) == ("pending", "")
    assert approved_events(tenant) == [good.pk]
    assert api.get("/api/v1/products/p-beans/reviews").json()["count"] == 1
    assert api.get("/api/v1/products/p-filter/reviews").json()["count"] == 0
    # A person approving the auto-published one again: still one review.approved.
    review_moderate(review=good, action="approve", by="mia")
    assert approved_events(tenant) == [good.pk]


def test_a_low_rating_waits_and_links_are_allowed_when_the_store_says_so(api, tenant):
    rules(tenant, auto_publish_min_rating=5, auto_publish_without_links=False)
    feedback_journey(tenant, "review")
    send_feedback_email(api, tenant)
    low = write_review(tenant, "p-beans", 4, "Fine", "ok", LATER)
    linked = write_review(tenant, "p-filter", 5, "Best", "see https://example.com/filters", LATER)
    assert [low.status, linked.status] == ["pending", "approved"]


def test_moderation_off_publishes_every_review(api, tenant):
    rules(tenant, moderation=False)
    feedback_journey(tenant, "review")
    send_feedback_email(api, tenant)
    one = write_review(tenant, "p-beans", 1, "Bad", "http://spam.example.com", LATER)
    assert (one.status, one.moderated_by) == ("approved", AUTO_PUBLISHER)
    assert approved_events(tenant) == [one.pk]
    assert Review.objects.for_tenant(tenant).filter(status="pending").count() == 0
