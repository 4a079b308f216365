"""The brand and review-rule pages: validation a person understands (a 400, nothing written), a preview that
renders the unsaved values and writes nothing, each save audited with its before and after, roles checked."""

import re

import pytest
from django.urls import reverse

from feedback.models import ReviewSettings
from lifecycle.models import Event, Membership, Tenant
from tests.workspace.program_objects import pending_review

from .conftest import client_for, make_user

pytestmark = pytest.mark.django_db

BRAND = {"brand_logo_url": "https://cdn.acme.example/logo.png", "brand_color": "#1D4ED8", "brand_background": "#ffffff",
         "postal_address": "Acme Coffee, Röstereiweg 1, 10115 Berlin"}
RULES = {"moderation": "on", "auto_publish_min_rating": "4", "auto_publish_without_links": "on"}


@pytest.fixture
def as_owner(tenant):
    return client_for(make_user("olivia", tenant, Membership.Role.OWNER))


def url(tenant, name):
    return reverse(f"workspace:{name}", kwargs={"tenant": tenant.slug})


def audit(tenant, type_):
    return [e.data for e in Event.objects.for_tenant(tenant).filter(type=type_).order_by("pk")]


def tenant_row(tenant):
    return Tenant.objects.filter(pk=tenant.pk).values().get()


def srcdoc(body: str, cls: str) -> str:
    import html
    return html.unescape(re.search(rf'class="{cls}"[^>]*srcdoc="([^"]*)"', body).group(1))


def test_an_owner_saves_the_brand_and_the_audit_log_has_before_and_after(as_owner, tenant):
    response = as_owner.post(url(tenant, "settings-brand"), BRAND)
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.brand_logo_url, tenant.brand_color, tenant.brand_background, tenant.postal_address) == (
        "https://cdn.acme.example/logo.png", "#1d4ed8", "#ffffff", "Acme Coffee, Röstereiweg 1, 10115 Berlin")
    assert audit(tenant, "store.settings_changed") == [{
        "fields": ["brand_logo_url", "brand_color", "brand_background", "postal_address"],
        "changes": {"brand_logo_url": ["", "https://cdn.acme.example/logo.png"], "brand_color": ["#7a4b2a", "#1d4ed8"],
                    "brand_background": ["#f4f1ec", "#ffffff"],
                    "postal_address": ["", "Acme Coffee, Röstereiweg 1, 10115 Berlin"]},
        "by": "olivia"}]
    page = as_owner.get(url(tenant, "settings-brand")).content.decode()
    email = srcdoc(page, "email-preview")
    assert re.search(r'<img class="logo" alt="Acme[^"]*" src="https://cdn.acme.example/logo.png"', email) and "#1d4ed8" in email
    assert "Röstereiweg 1" in email
    shopper = srcdoc(page, "page-preview")
    assert "https://cdn.acme.example/logo.png" in shopper and "background: #1d4ed8" in shopper
    audit_page = as_owner.get(url(tenant, "settings-audit")).content.decode()
    assert "brand_color" in audit_page and "#1d4ed8" in audit_page


def test_the_brand_preview_renders_unsaved_values_and_writes_nothing(as_owner, tenant):
    before, events = tenant_row(tenant), Event.objects.for_tenant(tenant).count()
    response = as_owner.post(url(tenant, "settings-brand"), {**BRAND, "brand_color": "#0f766e", "preview": "1"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Preview: not saved yet" in body
    assert "#0f766e" in srcdoc(body, "email-preview") and "#0f766e" in srcdoc(body, "page-preview")
    assert tenant_row(tenant) == before
    assert Event.objects.for_tenant(tenant).count() == events


@pytest.mark.parametrize(("field", "value", "message"), [
    ("brand_color", "blue", "Write the brand colour as # and six hex digits, such as #7a4b2a."),
    ("brand_color", "#ffee00", "White button text on #ffee00 is hard to read (contrast 1.2:1, at least 3:1 needed)"),
    ("brand_background", "#7a4b2b", "barely shows on #7a4b2b"),
    ("brand_logo_url", "http://acme.example/logo.png", "Use an https:// address"),
    ("postal_address", " ", "Marketing email must carry the store&#x27;s postal address: fill it in."),
])
def test_bad_brand_values_are_a_400_with_the_reason_and_nothing_written(as_owner, tenant, field, value, message):
    before = tenant_row(tenant)
    for extra in ({}, {"preview": "1"}):
        response = as_owner.post(url(tenant, "settings-brand"), {**BRAND, field: value, **extra})
        assert response.status_code == 400
        assert message in response.content.decode()
    assert tenant_row(tenant) == before
    assert audit(tenant, "store.settings_changed") == []


def test_the_sender_page_previews_a_sample_email_with_the_unsaved_sender(as_owner, tenant):
    data = {"sender_name": "Acme Roasters", "sender_email": "hi@acme.example", "reply_to": "care@acme.example",
            "time_zone": "Europe/Berlin", "quiet_hours_start": "22:00", "quiet_hours_end": "07:30",
            "frequency_cap_hours": "24", "preview": "1"}
    before = tenant_row(tenant)
    body = as_owner.post(url(tenant, "settings"), data).content.decode()
    assert 'id="preview-from">Acme Roasters &lt;hi@acme.example&gt;' in body
    assert 'id="preview-reply-to">care@acme.example' in body
    assert "No email lands between 22:00 and 07:30" in body and "one marketing email per 24 hours" in body
    assert tenant_row(tenant) == before


def test_review_rules_are_saved_audited_and_previewed_on_the_latest_reviews(as_owner, tenant, a_customer):
    from lifecycle.models import Order
    order = Order.objects.for_tenant(tenant).get(external_id="A-1")
    pending_review(tenant, customer=a_customer, order=order, title="Lovely beans")
    body = as_owner.post(url(tenant, "settings-reviews"), {**RULES, "preview": "1"}).content.decode()
    assert "published: 4★ meets the 4★ rule and has no web address" in body
    assert not ReviewSettings.objects.for_tenant(tenant).exists()

    assert as_owner.post(url(tenant, "settings-reviews"), RULES).status_code == 302
    saved = ReviewSettings.objects.for_tenant(tenant).get()
    assert (saved.moderation, saved.auto_publish_min_rating, saved.auto_publish_without_links) == (True, 4, True)
    assert audit(tenant, "store.review_settings_changed") == [{
        "fields": ["auto_publish_min_rating"], "changes": {"auto_publish_min_rating": [None, 4]}, "by": "olivia"}]
    # Moderation off: the preview says every review is published.
    as_owner.post(url(tenant, "settings-reviews"), {"auto_publish_min_rating": ""})
    assert "moderation is off: every review is published" in as_owner.get(url(tenant, "settings-reviews")).content.decode()
    assert audit(tenant, "store.review_settings_changed")[1]["changes"] == {
        "moderation": [True, False], "auto_publish_min_rating": [4, None], "auto_publish_without_links": [True, False]}


def test_a_bad_star_rule_is_a_400(as_owner, tenant):
    response = as_owner.post(url(tenant, "settings-reviews"), {**RULES, "auto_publish_min_rating": "9"})
    assert response.status_code == 400
    assert "Select a valid choice. 9 is not one of the available choices." in response.content.decode()
    assert not ReviewSettings.objects.for_tenant(tenant).exists()


def test_roles(tenant, as_viewer, as_marketer):
    before = tenant_row(tenant)
    for client in (as_viewer, as_marketer):
        assert client.post(url(tenant, "settings-brand"), BRAND).status_code == 403
        assert client.get(url(tenant, "settings-brand")).status_code == 200
    assert as_viewer.post(url(tenant, "settings-reviews"), RULES).status_code == 403
    assert as_viewer.post(url(tenant, "settings-reviews"), {**RULES, "preview": "1"}).status_code == 403
    assert tenant_row(tenant) == before and not ReviewSettings.objects.for_tenant(tenant).exists()
    assert as_marketer.post(url(tenant, "settings-reviews"), RULES).status_code == 302
    assert ReviewSettings.objects.for_tenant(tenant).get().auto_publish_min_rating == 4
