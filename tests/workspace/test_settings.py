"""Store settings: owners change them, everyone else reads them; secrets are shown once; bad input is
a 400 with the message on the form and nothing written; the last owner stays."""

import datetime as dt
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from journeys.models import WebhookSecret
from lifecycle import clock
from lifecycle.models import ApiKey, Event, Membership, StoreConnection, Tenant
from lifecycle.tenants import store_connect
from tests.conftest import Api

from .conftest import client_for, make_user

pytestmark = pytest.mark.django_db

VALID = {"sender_name": "Acme Coffee", "sender_email": "hello@acme.example", "reply_to": "help@acme.example",
         "postal_address": "Acme Coffee, Röstereiweg 1, 10115 Berlin", "time_zone": "Europe/Berlin",
         "quiet_hours_start": "22:00", "quiet_hours_end": "07:30", "frequency_cap_hours": "24"}


@pytest.fixture
def owner(tenant):
    return make_user("olivia", tenant, Membership.Role.OWNER)


@pytest.fixture
def as_owner(owner):
    return client_for(owner)


def url(tenant, name: str, **kwargs) -> str:
    return reverse(f"workspace:{name}", kwargs={"tenant": tenant.slug, **kwargs})


def store_events(tenant) -> list[tuple[str, dict]]:
    return [(e.type, e.data) for e in Event.objects.for_tenant(tenant).filter(type__startswith="store.").order_by("pk")]


def tenant_row(tenant) -> dict:
    return Tenant.objects.filter(pk=tenant.pk).values().get()


def words(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


# --- sender and brand ----------------------------------------------------------------------


def test_an_owner_saves_the_sender_settings(as_owner, tenant):
    response = as_owner.post(url(tenant, "settings"), VALID)
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.sender_name, tenant.sender_email, tenant.reply_to, tenant.time_zone, tenant.quiet_hours_start,
            tenant.quiet_hours_end, tenant.frequency_cap_hours) == (
        "Acme Coffee", "hello@acme.example", "help@acme.example", "Europe/Berlin", dt.time(22, 0), dt.time(7, 30), 24)
    assert tenant.postal_address == ""  # the footer address is the brand page's (test_store_brand.py)
    assert store_events(tenant) == [("store.settings_changed", {
        "fields": ["sender_email", "reply_to", "quiet_hours_start", "quiet_hours_end", "frequency_cap_hours"],
        "changes": {"sender_email": ["", "hello@acme.example"], "reply_to": ["", "help@acme.example"],
                    "quiet_hours_start": ["21:00:00", "22:00:00"], "quiet_hours_end": ["08:00:00", "07:30:00"],
                    "frequency_cap_hours": [16, 24]},
        "by": "olivia"})]
    assert "Settings saved." in words(as_owner.get(url(tenant, "settings")))
    # The same values again: nothing changes, no event.
    as_owner.post(url(tenant, "settings"), VALID)
    assert len(store_events(tenant)) == 1


@pytest.mark.parametrize(("field", "value", "message"), [
    ("time_zone", "Mars/Olympus", "Select a valid choice. Mars/Olympus is not one of the available choices."),
    ("sender_email", "not-an-address", "Enter a valid email address."),
    ("reply_to", "a@", "Enter a valid email address."),
    ("sender_name", "", "This field is required."),
    ("frequency_cap_hours", "0", "Choose between 1 and 168 hours."),
    ("frequency_cap_hours", "500", "Choose between 1 and 168 hours."),
    ("quiet_hours_start", "25:00", "Enter a valid time."),
])
def test_bad_settings_are_a_400_on_the_form_and_nothing_is_written(as_owner, tenant, field, value, message):
    before = tenant_row(tenant)
    response = as_owner.post(url(tenant, "settings"), {**VALID, field: value})
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert "Nothing was saved: fix the fields marked below." in body
    assert tenant_row(tenant) == before
    assert store_events(tenant) == []


@pytest.mark.parametrize("client", ["as_viewer", "as_marketer"])
def test_only_owners_change_settings(request, tenant, client):
    browser = request.getfixturevalue(client)
    page = browser.get(url(tenant, "settings"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Read-only: only an owner changes these." in body
    assert "<fieldset disabled>" in body
    assert ">Save</button>" not in body
    assert 'value="Acme Coffee"' in body  # the values are there to read
    before = tenant_row(tenant)
    response = browser.post(url(tenant, "settings"), VALID)
    assert response.status_code == 403
    assert tenant_row(tenant) == before
    assert store_events(tenant) == []


# --- deliverability ------------------------------------------------------------------------


@pytest.fixture
def paused(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(
        marketing_paused_at=dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC),
        marketing_paused_reason="hard bounces at 12.00% of 100 emails (pause above 10.00%)",
        deliverability_alert="hard bounces at 12.00% of 100 emails (pause above 10.00%)",
        deliverability_alert_at=dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC))
    tenant.refresh_from_db()
    return tenant


def test_a_paused_store_says_why_and_its_owner_resumes(as_owner, paused):
    body = words(as_owner.get(url(paused, "settings")))
    assert "Deliverability: marketing email is paused" in body
    assert "Since 2026-11-23 09:00, no marketing email leaves this store (order and account email still does): " \
           "hard bounces at 12.00% of 100 emails (pause above 10.00%)." in body
    assert 'id="resume-marketing"' in as_owner.get(url(paused, "settings")).content.decode()
    with clock.frozen(dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)):
        response = as_owner.post(url(paused, "settings-resume-marketing"))
    assert response.status_code == 302
    paused.refresh_from_db()
    assert (paused.marketing_paused_at, paused.marketing_resumed_at) == (
        None, dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC))
    resumed = Event.objects.for_tenant(paused).get(type="deliverability.resumed")
    assert resumed.data["by"] == "olivia"
    after = words(as_owner.get(url(paused, "settings")))
    assert "Marketing email is resumed" in after
    assert "Deliverability: fine" in after


def test_a_viewer_sees_the_pause_but_cannot_resume(as_viewer, paused):
    page = as_viewer.get(url(paused, "settings")).content.decode()
    assert "marketing email is paused" in page
    assert 'id="resume-marketing"' not in page
    assert "An owner can resume marketing email here." in page
    assert as_viewer.post(url(paused, "settings-resume-marketing")).status_code == 403
    paused.refresh_from_db()
    assert paused.marketing_paused_at is not None
    assert not Event.objects.for_tenant(paused).filter(type="deliverability.resumed").exists()


# --- team ----------------------------------------------------------------------------------


def memberships(tenant) -> list[tuple[str, str]]:
    return sorted(Membership.objects.filter(tenant=tenant).values_list("user__username", "role"))


def test_the_team_page_lists_members_and_roles(as_viewer, tenant, owner, marketer):
    body = words(as_viewer.get(url(tenant, "settings-team")))
    assert "mara mara@example.com marketer" in body
    assert "olivia olivia@example.com owner" in body
    assert "victor victor@example.com (you) viewer" in body
    assert "Add someone" not in body and "Remove" not in body


@pytest.mark.parametrize(("data", "message"), [
    ({"email": "mara@example.com", "role": "viewer"}, "mara@example.com is already in this store&#x27;s team."),
    ({"email": "not an email", "role": "viewer"}, "Enter a valid email address."),
    ({"email": "new@example.com", "role": "admin"}, "Select a valid choice. admin is not one of the available choices."),
])
def test_bad_invites_are_a_400_and_add_no_one(as_owner, tenant, marketer, data, message):
    from lifecycle.models import Invitation

    before = memberships(tenant)
    users = get_user_model().objects.count()
    response = as_owner.post(url(tenant, "settings-team"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert memberships(tenant) == before
    assert get_user_model().objects.count() == users
    assert store_events(tenant) == []
    assert not Invitation.objects.for_tenant(tenant).exists()


def test_an_owner_changes_a_role_and_removes_a_member(as_owner, tenant, marketer):
    membership = Membership.objects.get(tenant=tenant, user=marketer)
    response = as_owner.post(url(tenant, "settings-team-role", membership_id=membership.pk), {"role": "viewer"})
    assert response.status_code == 302
    assert ("mara", "viewer") in memberships(tenant)
    response = as_owner.post(url(tenant, "settings-team-remove", membership_id=membership.pk))
    assert response.status_code == 302
    assert "mara" not in [name for name, _ in memberships(tenant)]
    assert get_user_model().objects.filter(username="mara").exists()  # the account stays
    assert [t for t, _ in store_events(tenant)] == ["store.member_role_changed", "store.member_removed"]


def test_the_last_owner_can_be_neither_demoted_nor_removed(as_owner, tenant, owner):
    # tenant_create made owner@acme.test an owner too: remove that one first, which is allowed.
    first = Membership.objects.get(tenant=tenant, user__username="owner@acme.test")
    assert as_owner.post(url(tenant, "settings-team-remove", membership_id=first.pk)).status_code == 302
    mine = Membership.objects.get(tenant=tenant, user=owner)
    before = memberships(tenant)
    demote = as_owner.post(url(tenant, "settings-team-role", membership_id=mine.pk), {"role": "marketer"})
    assert demote.status_code == 400
    assert "olivia is the store&#x27;s only owner: make someone else an owner first." in demote.content.decode()
    remove = as_owner.post(url(tenant, "settings-team-remove", membership_id=mine.pk))
    assert remove.status_code == 400
    assert "olivia is the store&#x27;s only owner" in remove.content.decode()
    assert memberships(tenant) == before == [("olivia", "owner")]


def test_a_bad_role_is_a_400(as_owner, tenant, marketer):
    membership = Membership.objects.get(tenant=tenant, user=marketer)
    response = as_owner.post(url(tenant, "settings-team-role", membership_id=membership.pk), {"role": "boss"})
    assert response.status_code == 400
    assert "Choose a role for mara: owner, marketer or viewer." in response.content.decode()
    assert ("mara", "marketer") in memberships(tenant)


# --- API keys ------------------------------------------------------------------------------


def test_an_owner_creates_a_key_shown_once_and_revokes_it(as_owner, tenant):
    response = as_owner.post(url(tenant, "settings-keys"), {"name": "checkout backend"})
    assert response.status_code == 201
    key = re.search(r'id="new-api-key">([^<]+)<', response.content.decode()).group(1)
    api_key = ApiKey.objects.for_tenant(tenant).get(name="checkout backend")
    assert key.startswith(f"lc_{api_key.prefix}_")
    assert api_key.key_hash not in response.content.decode()
    assert Api(key).post("/api/v1/ping").status_code == 200

    listing = as_owner.get(url(tenant, "settings-keys")).content.decode()
    assert key not in listing
    assert f"lc_{api_key.prefix}_…" in listing
    assert api_key.key_hash not in listing

    response = as_owner.post(url(tenant, "settings-key-revoke", api_key_id=api_key.pk))
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert Api(key).post("/api/v1/ping").status_code == 401
    assert [t for t, _ in store_events(tenant)] == ["store.api_key_created", "store.api_key_revoked"]
    assert key not in json.dumps(store_events(tenant))


def test_a_key_needs_a_name(as_owner, tenant):
    before = ApiKey.objects.for_tenant(tenant).count()
    response = as_owner.post(url(tenant, "settings-keys"), {"name": ""})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert ApiKey.objects.for_tenant(tenant).count() == before


# --- store connections ---------------------------------------------------------------------


def test_connecting_woocommerce_shows_the_webhook_url_and_a_made_secret_once(as_owner, tenant, settings):
    response = as_owner.post(url(tenant, "settings-stores"), {"platform": "woocommerce",
                                                              "address": "https://shop.acme.example", "secret": ""})
    assert response.status_code == 201
    conn = StoreConnection.objects.for_tenant(tenant).get()
    body = response.content.decode()
    secret = re.search(r'id="webhook-secret">([^<]+)<', body).group(1)
    assert conn.verification_secrets(clock.now()) == [secret.encode()]
    assert f"{settings.PUBLIC_BASE_URL}/webhooks/woocommerce/{conn.public_id}" in body
    listing = as_owner.get(url(tenant, "settings-stores")).content.decode()
    assert secret not in listing
    assert f"/webhooks/woocommerce/{conn.public_id}" in listing


def test_connecting_shopify_with_its_own_secret(as_owner, tenant, settings):
    response = as_owner.post(url(tenant, "settings-stores"), {"platform": "shopify", "address": "Acme.myshopify.com",
                                                              "secret": "shpss_0123456789"})
    assert response.status_code == 201
    conn = StoreConnection.objects.for_tenant(tenant).get()
    assert conn.shop_domain == "acme.myshopify.com"
    assert conn.verification_secrets(clock.now()) == [b"shpss_0123456789"]
    assert "shpss_0123456789" not in response.content.decode()
    assert f"{settings.PUBLIC_BASE_URL}/webhooks/shopify" in response.content.decode()


@pytest.mark.parametrize(("data", "status", "message"), [
    ({"platform": "shopify", "address": "taken.myshopify.com", "secret": "shpss_0123456789"}, 409,
     "taken.myshopify.com is already connected"),
    ({"platform": "shopify", "address": "not a domain", "secret": "shpss_0123456789"}, 400,
     "&#x27;not a domain&#x27; is not a shop domain such as my-shop.myshopify.com"),
    ({"platform": "woocommerce", "address": "shop.example.com", "secret": ""}, 400,
     "&#x27;shop.example.com&#x27; is not a site URL such as https://shop.example.com"),
    ({"platform": "woocommerce", "address": "https://shop.example.com", "secret": "short"}, 400,
     "Ensure this value has at least 8 characters (it has 5)."),
    ({"platform": "magento", "address": "https://shop.example.com"}, 400, "Select a valid choice."),
])
def test_bad_connections_are_refused_on_the_form(as_owner, tenant, other_tenant, data, status, message):
    store_connect(tenant=other_tenant, platform="shopify", address="taken.myshopify.com", secret="globex-secret")
    response = as_owner.post(url(tenant, "settings-stores"), data)
    assert response.status_code == status
    assert message in response.content.decode()
    assert not StoreConnection.objects.for_tenant(tenant).exists()
    assert store_events(tenant) == []


def test_rotating_a_secret_keeps_the_old_one_for_the_grace_period(as_owner, tenant):
    conn = store_connect(tenant=tenant, platform="woocommerce", address="https://shop.acme.example",
                         secret="first-secret")
    now = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
    with clock.frozen(now):
        response = as_owner.post(url(tenant, "settings-store-rotate", connection_id=conn.pk), {"secret": ""})
    assert response.status_code == 200
    secret = re.search(r'id="webhook-secret">([^<]+)<', response.content.decode()).group(1)
    assert "The previous secret keeps working until 2026-11-23 11:00" in response.content.decode()
    conn.refresh_from_db()
    assert conn.verification_secrets(now) == [secret.encode(), b"first-secret"]
    assert conn.verification_secrets(now + dt.timedelta(hours=3)) == [secret.encode()]
    bad = as_owner.post(url(tenant, "settings-store-rotate", connection_id=conn.pk), {"secret": "short"})
    assert bad.status_code == 400
    assert "Ensure this value has at least 8 characters (it has 5)." in bad.content.decode()
    conn.refresh_from_db()
    assert conn.verification_secrets(now) == [secret.encode(), b"first-secret"]


# --- who may write -------------------------------------------------------------------------


@pytest.fixture
def targets(tenant, marketer):
    conn = store_connect(tenant=tenant, platform="woocommerce", address="https://shop.acme.example",
                         secret="first-secret")
    return {"membership": Membership.objects.get(tenant=tenant, user=marketer),
            "api_key": ApiKey.objects.for_tenant(tenant).get(), "connection": conn}


def snapshot(tenant) -> str:
    rows = {"tenant": tenant_row(tenant), "members": memberships(tenant),
            "keys": list(ApiKey.objects.for_tenant(tenant).values()),
            "connections": list(StoreConnection.objects.for_tenant(tenant).values()),
            "webhook_secrets": list(WebhookSecret.objects.for_tenant(tenant).values()),
            "users": get_user_model().objects.count(), "events": Event.objects.for_tenant(tenant).count()}
    return json.dumps(rows, default=str, sort_keys=True)


@pytest.mark.parametrize("client", ["as_viewer", "as_marketer"])
def test_every_settings_post_below_owner_is_a_403_and_changes_nothing(request, tenant, targets, client):
    browser = request.getfixturevalue(client)
    before = snapshot(tenant)
    posts = [
        (url(tenant, "settings"), VALID),
        (url(tenant, "settings-resume-marketing"), {}),
        (url(tenant, "settings-team"), {"email": "x@example.com", "role": "owner"}),
        (url(tenant, "settings-team-role", membership_id=targets["membership"].pk), {"role": "owner"}),
        (url(tenant, "settings-team-remove", membership_id=targets["membership"].pk), {}),
        (url(tenant, "settings-keys"), {"name": "sneaky"}),
        (url(tenant, "settings-key-revoke", api_key_id=targets["api_key"].pk), {}),
        (url(tenant, "settings-stores"), {"platform": "woocommerce", "address": "https://x.example"}),
        (url(tenant, "settings-store-rotate", connection_id=targets["connection"].pk), {}),
        (url(tenant, "settings-webhooks"), {}),
    ]
    for path, data in posts:
        response = browser.post(path, data)
        assert response.status_code == 403, path
    assert snapshot(tenant) == before
    # …and the pages show them no write controls.
    for name in ("settings-team", "settings-keys", "settings-stores", "settings-webhooks"):
        body = browser.get(url(tenant, name)).content.decode()
        assert "<form method=\"post\"" not in body.split('class="content"', 1)[1], name
