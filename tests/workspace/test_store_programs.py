"""What a store did in the operator's admin, now in its workspace: the referral review queue, review
moderation, and the loyalty, referral and survey settings. A marketer or owner changes them, a viewer
reads them; another store's ids are 404; bad input is a 400 with the field's message and writes nothing."""

import html
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from feedback.models import Review, Survey
from lifecycle.models import Event, Membership
from loyalty.models import Program as LoyaltyProgram
from loyalty.models import Reward as LoyaltyReward
from loyalty.models import Tier
from referrals.models import Program as ReferralProgram
from referrals.models import Referral
from tests.factories import CustomerFactory, OrderFactory

from .conftest import client_for, make_user
from .program_objects import held_referral, pending_review, programmes

pytestmark = pytest.mark.django_db


def url(tenant, name: str, **kwargs) -> str:
    return reverse(f"workspace:{name}", kwargs={"tenant": tenant.slug, **kwargs})


def words(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def events(tenant, prefix: str) -> list[tuple[str, dict]]:
    return [(e.type, e.data) for e in Event.objects.for_tenant(tenant).filter(type__startswith=prefix).order_by("pk")]


def referral_states(tenant) -> dict[int, tuple[str, str]]:
    return {r.pk: (r.state, r.decided_by) for r in Referral.objects.for_tenant(tenant)}


@pytest.fixture
def as_owner(tenant):
    return client_for(make_user("olivia", tenant, Membership.Role.OWNER))


@pytest.fixture
def two_held(tenant):
    """Two referrals of acme waiting for review, each a different friend's order."""
    ReferralProgram.objects.for_tenant(tenant).create(tenant=tenant, store_url="https://a-store.example.com/",
                                                      currency="EUR")
    advocate = CustomerFactory(tenant=tenant, email="ada@a-store.example.com")
    found = []
    for n in (1, 2):
        order = OrderFactory(tenant=tenant, external_id=f"F-{n}", number=f"#F{n}", total=Decimal("40.00"))
        found.append(held_referral(tenant, advocate=advocate, friend=order.customer, order=order))
    return found


@pytest.fixture
def a_rows(tenant, a_customer):
    from lifecycle.models import Order

    return programmes(tenant, a_customer, Order.objects.for_tenant(tenant).get(external_id="A-1"))


# --- the referral review queue -----------------------------------------------------------------


def test_the_queue_shows_each_held_referral_with_the_rules_that_held_it(as_viewer, tenant, two_held):
    response = as_viewer.get(url(tenant, "referral-queue"))
    assert response.status_code == 200
    text = words(response)
    assert "2 waiting" in text
    assert "self_referral_email : same email address after removing +tags and Gmail dots" in text
    assert "order #F1" in text and "order #F2" in text and "40.00 EUR" in text
    # A viewer reads, and gets no buttons.
    assert 'name="action"' not in response.content.decode()
    assert "Read-only: a marketer or an owner decides." in text


def test_a_marketer_rejects_exactly_that_referral(as_marketer, tenant, two_held):
    first, second = two_held
    response = as_marketer.post(url(tenant, "referral-decide", referral_id=first.pk),
                                {"action": "reject", "reason": "the same person twice"})
    assert response.status_code == 302
    assert referral_states(tenant) == {first.pk: ("rejected", "mara"), second.pk: ("review", "")}
    first.refresh_from_db()
    assert (first.reason, first.rejected_at is not None, first.flags[0]["rule"]) == (
        "the same person twice", True, "self_referral_email")
    assert [(t, d["referral_id"]) for t, d in events(tenant, "referral.")] == [("referral.rejected", first.pk)]
    followed = as_marketer.get(response.url)
    assert "rejected, nobody is rewarded for it" in words(followed)
    assert f'id="referral-{first.pk}"' not in followed.content.decode()


def test_a_marketer_approves_and_the_release_date_stays(as_marketer, tenant, two_held):
    first, second = two_held
    release_at = second.release_at
    response = as_marketer.post(url(tenant, "referral-decide", referral_id=second.pk), {"action": "approve"})
    assert response.status_code == 302
    assert referral_states(tenant) == {first.pk: ("review", ""), second.pk: ("converted", "mara")}
    second.refresh_from_db()
    assert (second.reason, second.release_at) == ("approved on review", release_at)
    assert [(t, d["referral_id"]) for t, d in events(tenant, "referral.")] == [("referral.converted", second.pk)]


def test_a_decided_referral_is_not_decided_again(as_marketer, tenant, two_held):
    first, _ = two_held
    as_marketer.post(url(tenant, "referral-decide", referral_id=first.pk), {"action": "reject"})
    response = as_marketer.post(url(tenant, "referral-decide", referral_id=first.pk), {"action": "approve"},
                                follow=True)
    assert "was no longer waiting for review (it is rejected): nothing changed" in words(response)
    first.refresh_from_db()
    assert (first.state, first.reason) == ("rejected", "rejected on review")
    assert [t for t, _ in events(tenant, "referral.")] == ["referral.rejected"]


def test_a_viewers_decision_is_403_and_changes_nothing(as_viewer, tenant, two_held):
    before = referral_states(tenant)
    response = as_viewer.post(url(tenant, "referral-decide", referral_id=two_held[0].pk), {"action": "approve"})
    assert response.status_code == 403
    assert "you can look, but this needs a marketer" in words(response)
    assert referral_states(tenant) == before
    assert events(tenant, "referral.") == []


def test_another_stores_referral_id_is_404_and_changes_nothing(as_outsider, other_tenant, tenant, two_held):
    before = referral_states(tenant)
    for slug_tenant in (other_tenant, tenant):
        response = as_outsider.post(url(slug_tenant, "referral-decide", referral_id=two_held[0].pk),
                                    {"action": "reject"})
        assert response.status_code == 404
    assert referral_states(tenant) == before
    assert events(tenant, "referral.") == []


def test_a_decision_without_approve_or_reject_is_400(as_marketer, tenant, two_held):
    before = referral_states(tenant)
    response = as_marketer.post(url(tenant, "referral-decide", referral_id=two_held[0].pk), {"action": "maybe"})
    assert response.status_code == 400
    assert "Choose approve or reject." in words(response)
    assert referral_states(tenant) == before


def test_a_decision_needs_the_csrf_token(marketer, tenant, two_held):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    response = client.post(url(tenant, "referral-decide", referral_id=two_held[0].pk), {"action": "reject"})
    assert response.status_code == 403
    assert referral_states(tenant)[two_held[0].pk] == ("review", "")


# --- review moderation -------------------------------------------------------------------------


@pytest.fixture
def two_reviews(tenant, a_customer):
    from lifecycle.models import Order

    order = Order.objects.for_tenant(tenant).get(external_id="A-1")
    return (pending_review(tenant, customer=a_customer, order=order, title="Lovely beans"),
            pending_review(tenant, customer=a_customer, order=order, title="Too bitter", product_id="dark"))


def review_states(tenant) -> dict[int, tuple[str, str, str]]:
    return {r.pk: (r.status, r.moderated_by, r.store_reply) for r in Review.objects.for_tenant(tenant)}


def test_the_review_queue_shows_each_pending_review_with_its_order(as_viewer, tenant, two_reviews):
    response = as_viewer.get(url(tenant, "review-queue"))
    assert response.status_code == 200
    body, text = response.content.decode(), words(response)
    assert "Lovely beans" in text and "Too bitter" in text and "Waiting (2)" in text
    order = two_reviews[0].order
    assert body.count(f'href="{url(tenant, "order", order_id=order.pk)}" class="review-order"') == 2
    assert f"order {order.number}" in text
    assert 'name="action"' not in body


def test_a_marketer_approves_one_review(as_marketer, tenant, two_reviews):
    first, second = two_reviews
    response = as_marketer.post(url(tenant, "review-moderate", review_id=first.pk), {"action": "approve", "reply": ""})
    assert response.status_code == 302
    assert review_states(tenant) == {first.pk: ("approved", "mara", ""), second.pk: ("pending", "", "")}
    assert [(t, d["review_id"]) for t, d in events(tenant, "review.")] == [("review.approved", first.pk)]
    assert events(tenant, "store.review_moderated") == [
        ("store.review_moderated", {"review_id": first.pk, "action": "approve", "status": "approved",
                                    "replied": False, "by": "mara"})]


def test_rejecting_without_a_reason_is_400_and_writes_nothing(as_marketer, tenant, two_reviews):
    before = review_states(tenant)
    response = as_marketer.post(url(tenant, "review-moderate", review_id=two_reviews[0].pk),
                                {"action": "reject", "reason": "  ", "reply": "Thanks!"})
    assert response.status_code == 400
    assert "Say why the review is rejected: the reason is kept with it." in words(response)
    assert review_states(tenant) == before
    assert events(tenant, "store.") == []


def test_a_reject_with_a_reason_and_a_reply_on_its_own(as_marketer, tenant, two_reviews):
    first, second = two_reviews
    as_marketer.post(url(tenant, "review-moderate", review_id=first.pk), {"action": "reject", "reason": "off topic"})
    as_marketer.post(url(tenant, "review-moderate", review_id=second.pk),
                     {"action": "reply", "reply": "Try it as espresso."})
    assert review_states(tenant) == {first.pk: ("rejected", "mara", ""),
                                     second.pk: ("pending", "", "Try it as espresso.")}
    first.refresh_from_db()
    assert first.rejection_reason == "off topic"
    assert events(tenant, "review.") == []


def test_a_viewers_moderation_is_403_and_another_stores_review_404(as_viewer, as_outsider, tenant, other_tenant,
                                                                   two_reviews):
    before = review_states(tenant)
    target = url(tenant, "review-moderate", review_id=two_reviews[0].pk)
    assert as_viewer.post(target, {"action": "approve"}).status_code == 403
    assert as_outsider.post(url(other_tenant, "review-moderate", review_id=two_reviews[0].pk),
                            {"action": "approve"}).status_code == 404
    assert review_states(tenant) == before
    assert events(tenant, "review.") == [] and events(tenant, "store.") == []


def test_an_unknown_review_filter_is_400(as_viewer, tenant):
    response = as_viewer.get(url(tenant, "review-queue"), {"status": "²"})
    assert response.status_code == 400
    assert "“status” is one of pending, approved, rejected" in words(response)


# --- loyalty -----------------------------------------------------------------------------------


LOYALTY = {"enabled": "on", "points_per_unit": "2", "pending_days": "21", "first_order_bonus": "100",
           "review_bonus": "50", "birthday_bonus": "0", "event_bonuses_text": "newsletter.signed_up = 25",
           "tier_basis": "spend", "tier_downgrade": "never", "expiry_months": "12", "expiry_warning_days": "30"}


def test_a_marketer_starts_the_loyalty_programme(as_marketer, tenant):
    response = as_marketer.post(url(tenant, "settings-loyalty"), LOYALTY)
    assert response.status_code == 302
    program = LoyaltyProgram.objects.for_tenant(tenant).get()
    assert (program.enabled, program.points_per_unit, program.pending_days, program.first_order_bonus,
            program.event_bonuses, program.tier_basis, program.expiry_months, program.expiry_warning_days) == (
        True, Decimal("2"), 21, 100, {"newsletter.signed_up": 25}, "spend", 12, 30)
    assert [t for t, _ in events(tenant, "store.")] == ["store.loyalty_program_created"]
    as_marketer.post(url(tenant, "settings-loyalty"), {**LOYALTY, "pending_days": "30"})
    assert events(tenant, "store.")[-1] == ("store.loyalty_program_changed", {"fields": ["pending_days"], "changes": {"pending_days": [21, 30]}, "by": "mara"})


@pytest.mark.parametrize(("field", "value", "message"), [
    ("expiry_warning_days", "400", "Choose at most 365 days."),
    ("expiry_months", "1", "The warning must go out before the points expire: fewer than 30 days for 1 month."),
    ("points_per_unit", "-1", "Choose between 0 and 1000 points per unit."),
    ("pending_days", "9999", "Choose between 0 and 365 days."),
    ("event_bonuses_text", "signup 10", "Line 1: write “event type = points”"),
    ("event_bonuses_text", "signup = ²", "Line 1: the points are a whole number from 1 to 1,000,000."),
])
def test_a_bad_loyalty_value_is_400_with_its_message_and_nothing_written(as_marketer, tenant, field, value, message):
    response = as_marketer.post(url(tenant, "settings-loyalty"), {**LOYALTY, field: value})
    assert response.status_code == 400
    assert message in words(response)
    assert "Nothing was saved: fix the fields marked below." in words(response)
    assert not LoyaltyProgram.objects.for_tenant(tenant).exists()
    assert events(tenant, "store.") == []


def test_a_viewer_reads_the_loyalty_settings_and_cannot_change_them(as_viewer, tenant, a_rows):
    page = as_viewer.get(url(tenant, "settings-loyalty"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "<fieldset disabled>" in body and "Platinum-A" in body and "Five off" in body
    assert "Read-only: a marketer or an owner changes these." in words(page)
    assert 'id="tier-add"' not in body and 'id="reward-add"' not in body
    before = LoyaltyProgram.objects.for_tenant(tenant).values().get()
    for name, kwargs in (("settings-loyalty", {}), ("settings-loyalty-tier-add", {}),
                         ("settings-loyalty-tier-remove", {"tier_id": a_rows["tier"].pk}),
                         ("settings-loyalty-reward-active", {"reward_id": a_rows["reward"].pk})):
        assert as_viewer.post(url(tenant, name, **kwargs), {**LOYALTY, "active": "0"}).status_code == 403, name
    assert LoyaltyProgram.objects.for_tenant(tenant).values().get() == before
    assert Tier.objects.for_tenant(tenant).count() == 1
    assert LoyaltyReward.objects.for_tenant(tenant).get().active is True


def test_tiers_are_added_edited_and_removed(as_marketer, tenant, a_rows):
    gold = a_rows["tier"]
    response = as_marketer.post(url(tenant, "settings-loyalty-tier-add"),
                                {"tier-name": "Silver", "tier-threshold": "200", "tier-multiplier": "1.2",
                                 "tier-perks": "Free shipping"})
    assert response.status_code == 302
    assert list(Tier.objects.for_tenant(tenant).values_list("name", "threshold", "multiplier")) == [
        ("Silver", Decimal("200"), Decimal("1.2")), ("Platinum-A", Decimal("500"), Decimal("1.5"))]
    response = as_marketer.post(url(tenant, "settings-loyalty-tier", tier_id=gold.pk),
                                {"name": "Gold", "threshold": "600", "multiplier": "2", "perks": ""})
    assert response.status_code == 302
    gold.refresh_from_db()
    assert (gold.name, gold.threshold, gold.multiplier) == ("Gold", Decimal("600"), Decimal("2"))
    assert as_marketer.post(url(tenant, "settings-loyalty-tier-remove", tier_id=gold.pk)).status_code == 302
    assert list(Tier.objects.for_tenant(tenant).values_list("name", flat=True)) == ["Silver"]
    assert [t for t, _ in events(tenant, "store.loyalty_tier")] == [
        "store.loyalty_tier_added", "store.loyalty_tier_changed", "store.loyalty_tier_removed"]


def test_a_tier_on_another_tiers_threshold_is_400_and_not_written(as_marketer, tenant, a_rows):
    response = as_marketer.post(url(tenant, "settings-loyalty-tier-add"),
                                {"tier-name": "Silver", "tier-threshold": "500", "tier-multiplier": "1.2"})
    assert response.status_code == 400
    assert "Another tier starts at 500: each tier needs its own threshold." in words(response)
    response = as_marketer.post(url(tenant, "settings-loyalty-tier", tier_id=a_rows["tier"].pk),
                                {"name": "Platinum-A", "threshold": "500", "multiplier": "11"})
    assert response.status_code == 400
    assert "Choose between 0 and 10." in words(response)
    assert list(Tier.objects.for_tenant(tenant).values_list("name", "threshold", "multiplier")) == [
        ("Platinum-A", Decimal("500"), Decimal("1.5"))]
    assert events(tenant, "store.") == []


def test_rewards_are_added_edited_and_deactivated(as_marketer, tenant, a_rows):
    response = as_marketer.post(url(tenant, "settings-loyalty-reward-add"), {
        "reward-name": "10% off", "reward-kind": "percent_discount", "reward-cost": "800", "reward-value": "10",
        "reward-code_source": "generated", "reward-code_prefix": "loyal"})
    assert response.status_code == 302
    added = LoyaltyReward.objects.for_tenant(tenant).get(name="10% off")
    assert (added.kind, added.cost, added.value, added.currency, added.code_prefix, added.active) == (
        "percent_discount", 800, Decimal("10"), "", "LOYAL", True)
    five = a_rows["reward"]
    response = as_marketer.post(url(tenant, "settings-loyalty-reward", reward_id=five.pk), {
        "name": "Five off", "kind": "fixed_discount", "cost": "450", "value": "5", "code_source": "generated",
        "code_prefix": "REWARD"})
    assert response.status_code == 302
    five.refresh_from_db()
    assert (five.cost, five.currency) == (450, tenant.currency)
    assert as_marketer.post(url(tenant, "settings-loyalty-reward-active", reward_id=five.pk),
                            {"active": "0"}).status_code == 302
    assert list(LoyaltyReward.objects.for_tenant(tenant).order_by("pk").values_list("name", "active")) == [
        ("Five off", False), ("10% off", True)]
    assert [t for t, _ in events(tenant, "store.loyalty_reward")] == [
        "store.loyalty_reward_added", "store.loyalty_reward_changed", "store.loyalty_reward_deactivated"]


def test_a_reward_switch_without_on_or_off_is_400_and_changes_nothing(as_marketer, tenant, a_rows):
    response = as_marketer.post(url(tenant, "settings-loyalty-reward-active", reward_id=a_rows["reward"].pk),
                                {"active": "maybe"})
    assert response.status_code == 400
    assert "Say whether the reward goes off the catalog (active=0) or back on (active=1)." in words(response)
    assert LoyaltyReward.objects.for_tenant(tenant).get().active is True
    assert events(tenant, "store.") == []


@pytest.mark.parametrize(("fields", "message"), [
    ({"reward-kind": "percent_discount", "reward-value": "150"}, "A percentage between 1 and 100."),
    ({"reward-kind": "fixed_discount", "reward-value": ""}, "Say how much it takes off, in EUR."),
    ({"reward-kind": "free_product", "reward-value": ""}, "Say which product is free: its id in your store."),
    ({"reward-cost": "0"}, "Choose between 1 and 10,000,000 points."),
])
def test_a_bad_reward_is_400_with_its_message_and_not_written(as_marketer, tenant, a_rows, fields, message):
    form = {"reward-name": "Big", "reward-kind": "fixed_discount", "reward-cost": "100", "reward-value": "5",
            "reward-code_source": "generated", "reward-code_prefix": "", **fields}
    response = as_marketer.post(url(tenant, "settings-loyalty-reward-add"), form)
    assert response.status_code == 400
    assert message in words(response)
    assert list(LoyaltyReward.objects.for_tenant(tenant).values_list("name", flat=True)) == ["Five off"]


# --- the referral programme ---------------------------------------------------------------------


REFERRALS = {"active": "on", "store_url": "https://acme.example.com/", "currency": "eur", "friend_offer_kind": "percent",
             "friend_offer_value": "15", "friend_reward_kind": "points", "friend_reward_amount": "0",
             "advocate_reward_kind": "points", "advocate_reward_amount": "500", "tier1_from": "3",
             "tier1_amount": "750", "tier2_from": "", "tier2_amount": "", "tier3_from": "", "tier3_amount": "",
             "new_customers_only": "on", "min_order_total": "20", "release_delay_days": "45",
             "advocate_monthly_cap": "5", "max_clicks_per_ip_per_day": "10", "max_conversions_per_advocate_per_day": "3",
             "review_deadline_hours": "48", "review_auto_decision": "approve", "reward_webhook_url": ""}


def test_an_owner_sets_up_the_referral_programme(as_owner, tenant):
    response = as_owner.post(url(tenant, "settings-referrals"), REFERRALS)
    assert response.status_code == 302
    p = ReferralProgram.objects.for_tenant(tenant).get()
    assert (p.active, p.currency, p.friend_offer_value, p.advocate_reward_kind, p.advocate_reward_amount,
            p.advocate_tiers, p.release_delay_days, p.max_clicks_per_ip_per_day, p.review_auto_decision) == (
        True, "EUR", Decimal("15"), "points", Decimal("500"), [{"from_friend": 3, "amount": "750"}], 45, 10, "approve")
    assert p.advocate_amount(1) == Decimal("500") and p.advocate_amount(3) == Decimal("750")
    assert [t for t, _ in events(tenant, "store.")] == ["store.referral_program_created"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"advocate_reward_kind": "discount_code"}, "Discount codes and store credit are created by your store"),
    ({"tier2_from": "2", "tier2_amount": "900"}, "List the friend numbers in increasing order, each once."),
    ({"tier1_amount": ""}, "Give both the friend number and the amount, or neither."),
    ({"friend_offer_value": "120"}, "A percentage is at most 100."),
    ({"advocate_reward_amount": "2.5"}, "Points are whole points."),
    ({"release_delay_days": "0"}, "Choose between 1 and 365 days, longer than your refund window."),
    ({"currency": "XXY"}, "is not an ISO 4217 currency code"),
    ({"store_url": "not a url"}, "Enter a valid URL."),
])
def test_a_bad_referral_programme_is_400_with_its_message_and_nothing_written(as_marketer, tenant, fields, message):
    response = as_marketer.post(url(tenant, "settings-referrals"), {**REFERRALS, **fields})
    assert response.status_code == 400
    assert message in words(response)
    assert not ReferralProgram.objects.for_tenant(tenant).exists()
    assert events(tenant, "store.") == []


def test_a_viewer_reads_the_referral_programme_and_cannot_change_it(as_viewer, tenant, a_rows):
    page = as_viewer.get(url(tenant, "settings-referrals"))
    assert page.status_code == 200 and "<fieldset disabled>" in page.content.decode()
    before = ReferralProgram.objects.for_tenant(tenant).values().get()
    assert as_viewer.post(url(tenant, "settings-referrals"), REFERRALS).status_code == 403
    assert ReferralProgram.objects.for_tenant(tenant).values().get() == before


# --- surveys ------------------------------------------------------------------------------------


SURVEY = {"name": "How likely", "question": "Would you recommend Acme to a friend?",
          "follow_up_question": "What is the one thing we should change?", "thank_you_text": "Thanks, truly.",
          "throttle_days": "60", "alert_email": "care@acme.example", "alert_webhook_url": "https://hooks.example/nps",
          "active": "on"}


def test_a_marketer_saves_a_standard_survey_and_changes_its_wording(as_marketer, tenant):
    response = as_marketer.post(url(tenant, "settings-surveys"), {"kind": "csat"})
    survey = Survey.objects.for_tenant(tenant).get()
    assert (survey.key, survey.kind, survey.throttle_days) == ("csat", "csat", 30)
    assert response.status_code == 302 and response.url == url(tenant, "settings-survey", survey_id=survey.pk)
    response = as_marketer.post(response.url, SURVEY)
    assert response.status_code == 302
    survey.refresh_from_db()
    assert (survey.name, survey.question, survey.follow_up_question, survey.thank_you_text, survey.throttle_days,
            survey.alert_email, survey.alert_webhook_url) == (
        "How likely", SURVEY["question"], SURVEY["follow_up_question"], "Thanks, truly.", 60, "care@acme.example",
        "https://hooks.example/nps")
    assert [t for t, _ in events(tenant, "store.")] == ["store.survey_created", "store.survey_changed"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"throttle_days": "999"}, "Choose between 0 (no limit) and 365 days."),
    ({"alert_email": "care at acme"}, "Enter a valid email address."),
    ({"alert_webhook_url": "ftp://hooks.example/x"}, "Enter a web address starting with https://."),
    ({"question": "x" * 301}, "Ensure this value has at most 300 characters"),
    ({"name": "  "}, "Give the survey a name you will recognise in the journey builder."),
])
def test_a_bad_survey_setting_is_400_with_its_message_and_nothing_written(as_marketer, tenant, a_rows, fields,
                                                                          message):
    survey = a_rows["survey"]
    before = Survey.objects.for_tenant(tenant).values().get(pk=survey.pk)
    response = as_marketer.post(url(tenant, "settings-survey", survey_id=survey.pk), {**SURVEY, **fields})
    assert response.status_code == 400
    assert message in words(response)
    assert Survey.objects.for_tenant(tenant).values().get(pk=survey.pk) == before
    assert events(tenant, "store.") == []


def test_the_wording_in_german_is_saved_and_other_languages_are_kept(as_marketer, tenant, a_rows):
    survey = a_rows["survey"]
    Survey.objects.for_tenant(tenant).filter(pk=survey.pk).update(translations={"fr": {"question": "Recommanderiez-vous ?"}})
    response = as_marketer.post(url(tenant, "settings-survey", survey_id=survey.pk),
                                {**SURVEY, "de_question": "Würden Sie Acme empfehlen?", "de_follow_up_question": "",
                                 "de_thank_you_text": " Danke! "})
    assert response.status_code == 302
    survey.refresh_from_db()
    assert survey.translations == {"fr": {"question": "Recommanderiez-vous ?"},
                                   "de": {"question": "Würden Sie Acme empfehlen?", "thank_you_text": "Danke!"}}
    page = as_marketer.get(url(tenant, "settings-survey", survey_id=survey.pk))
    assert 'value="Würden Sie Acme empfehlen?"' in page.content.decode()
    assert '<details class="translations" open>' in page.content.decode()
    response = as_marketer.post(url(tenant, "settings-survey", survey_id=survey.pk), {**SURVEY, "de_question": "x" * 301})
    assert response.status_code == 400
    assert "Ensure this value has at most 300 characters (it has 301)." in words(response)
    survey.refresh_from_db()
    assert survey.translations["de"]["question"] == "Würden Sie Acme empfehlen?"


def test_a_viewer_reads_a_survey_and_cannot_change_it(as_viewer, tenant, a_rows):
    survey = a_rows["survey"]
    page = as_viewer.get(url(tenant, "settings-survey", survey_id=survey.pk))
    assert page.status_code == 200 and "<fieldset disabled>" in page.content.decode()
    assert "support@a-store.example.com" in page.content.decode()
    assert as_viewer.post(url(tenant, "settings-survey", survey_id=survey.pk), SURVEY).status_code == 403
    assert as_viewer.post(url(tenant, "settings-surveys"), {"kind": "csat"}).status_code == 403
    survey.refresh_from_db()
    assert (survey.name, Survey.objects.for_tenant(tenant).count()) == ("NPS", 1)


def test_an_unknown_survey_kind_is_400(as_marketer, tenant):
    response = as_marketer.post(url(tenant, "settings-surveys"), {"kind": "mood"})
    assert response.status_code == 400
    assert "Choose one of the standard surveys to set up." in words(response)
    assert not Survey.objects.for_tenant(tenant).exists()


# --- finding them ------------------------------------------------------------------------------


def test_a_marketer_finds_the_queues_and_programmes_from_the_nav(as_marketer, tenant):
    body = as_marketer.get(url(tenant, "settings")).content.decode()
    for name in ("review-queue", "referral-queue", "settings-loyalty", "settings-referrals", "settings-surveys"):
        assert f'href="{url(tenant, name)}"' in body, name
    page = as_marketer.get(url(tenant, "settings-loyalty"))
    assert f'<a href="{url(tenant, "settings-loyalty")}" aria-current="page">Loyalty</a>' in page.content.decode()
    assert "Set up" not in words(page) and "Start the programme" in words(page)


# --- hostile numbers ---------------------------------------------------------------------------


HOSTILE = ["9" * 5000, "²", "-1", "1e999", "NaN", "Infinity", "99999999999999999999.99999"]
NUMERIC = {
    "settings-loyalty": (LOYALTY, ["points_per_unit", "pending_days", "first_order_bonus", "expiry_months",
                                   "expiry_warning_days"]),
    "settings-referrals": (REFERRALS, ["friend_offer_value", "advocate_reward_amount", "tier1_from", "tier1_amount",
                                       "min_order_total", "release_delay_days", "advocate_monthly_cap",
                                       "max_clicks_per_ip_per_day", "review_deadline_hours"]),
    "settings-loyalty-tier-add": ({"tier-name": "Silver", "tier-threshold": "200", "tier-multiplier": "1"},
                                  ["tier-threshold", "tier-multiplier"]),
    "settings-loyalty-reward-add": ({"reward-name": "Big", "reward-kind": "fixed_discount", "reward-cost": "100",
                                     "reward-value": "5", "reward-code_source": "generated"},
                                    ["reward-cost", "reward-value"]),
}


def settings_rows(tenant) -> str:
    return repr([list(m.objects.for_tenant(tenant).order_by("pk").values())
                 for m in (LoyaltyProgram, Tier, LoyaltyReward, ReferralProgram, Survey)])


@pytest.mark.parametrize("route", sorted(NUMERIC))
def test_numbers_no_person_means_are_400_never_500_and_write_nothing(as_marketer, tenant, route):
    if route != "settings-loyalty":
        LoyaltyProgram.objects.for_tenant(tenant).create(tenant=tenant)
    before = settings_rows(tenant)
    form, fields = NUMERIC[route]
    for field in fields:
        for value in HOSTILE:
            response = as_marketer.post(url(tenant, route), {**form, field: value})
            assert response.status_code == 400, (field, value[:20], response.status_code)
            assert 'class="error field-error"' in response.content.decode(), (field, value[:20])
    assert settings_rows(tenant) == before
    assert events(tenant, "store.") == []
