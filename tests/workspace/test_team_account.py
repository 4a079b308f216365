"""Removing a member asks first (a GET removes nobody); the last owner stays; the password page keeps the session,
refuses a wrong current password with nothing changed, and every change is in the audit log of each store."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from lifecycle.models import Event, Membership

from .conftest import PASSWORD, client_for, make_user

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "plum orchard lantern 42"  # noqa: S105 - a test password


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def owner(tenant):
    return make_user("olivia", tenant, Membership.Role.OWNER)


def remove_url(membership) -> str:
    return reverse("workspace:settings-team-remove", kwargs={"tenant": "acme", "membership_id": membership.pk})


def members(tenant) -> list[tuple[str, str]]:
    return sorted(Membership.objects.filter(tenant=tenant).values_list("user__username", "role"))


def store_events(tenant) -> list[tuple[str, dict]]:
    return list(Event.objects.for_tenant(tenant).filter(type__startswith="store.").order_by("pk")
                .values_list("type", "data"))


def test_removing_a_member_shows_a_confirmation_first_and_the_post_removes(tenant, owner, marketer):
    client = client_for(owner)
    membership = Membership.objects.get(tenant=tenant, user=marketer)
    team = client.get(reverse("workspace:settings-team", kwargs={"tenant": "acme"})).content.decode()
    assert f'href="{remove_url(membership)}"' in team  # a link to the question, not a form that removes
    before = members(tenant)
    page = client.get(remove_url(membership))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Remove mara from Acme Coffee?" in body and 'id="confirm-remove-button"' in body
    assert members(tenant) == before and store_events(tenant) == []
    response = client.post(remove_url(membership))
    assert response.status_code == 302 and response["Location"] == "/app/acme/settings/team/"
    assert ("mara", "marketer") not in members(tenant)
    assert get_user_model().objects.filter(username="mara").exists()
    assert store_events(tenant) == [("store.member_removed", {"user": "mara", "role": "marketer", "by": "olivia"})]


def test_the_last_owner_cannot_be_removed_and_the_question_says_why(tenant, owner):
    first = Membership.objects.get(tenant=tenant, user__username="owner@acme.test")
    client = client_for(owner)
    assert client.post(remove_url(first)).status_code == 302
    mine = Membership.objects.get(tenant=tenant, user=owner)
    page = client.get(remove_url(mine)).content.decode()
    assert 'id="last-owner"' in page and 'id="confirm-remove-button"' not in page
    events_before = store_events(tenant)
    response = client.post(remove_url(mine))
    assert response.status_code == 400
    assert "olivia is the store&#x27;s only owner" in response.content.decode()
    assert members(tenant) == [("olivia", "owner")]
    assert store_events(tenant) == events_before


@pytest.mark.parametrize("role", ["viewer", "marketer"])
def test_only_an_owner_removes_members(tenant, owner, role):
    member = make_user(role, tenant, role)
    target = Membership.objects.get(tenant=tenant, user=owner)
    before = members(tenant)
    assert client_for(member).post(remove_url(target)).status_code == 403
    assert members(tenant) == before and store_events(tenant) == []


def test_a_wrong_current_password_changes_nothing(tenant, owner):
    client = client_for(owner)
    response = client.post("/app/account/password/", {"old_password": "not it", "new_password1": NEW_PASSWORD,
                                                       "new_password2": NEW_PASSWORD})
    assert response.status_code == 400
    assert 'id="error-old_password"' in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD) and not owner.check_password(NEW_PASSWORD)
    assert store_events(tenant) == []


def test_two_different_new_passwords_change_nothing(tenant, owner):
    response = client_for(owner).post("/app/account/password/", {
        "old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "!"})
    assert response.status_code == 400 and 'id="error-new_password2"' in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)
    assert store_events(tenant) == []


def test_changing_the_password_keeps_this_session_ends_the_others_and_is_audited(tenant, other_tenant, owner):
    Membership.objects.create(tenant=other_tenant, user=owner, role=Membership.Role.VIEWER)
    here, elsewhere = client_for(owner), client_for(owner)
    response = here.post("/app/account/password/", {"old_password": PASSWORD, "new_password1": NEW_PASSWORD,
                                                    "new_password2": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/app/account/password/"
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    assert here.get("/app/acme/").status_code == 200
    assert elsewhere.get("/app/acme/")["Location"] == "/app/login/?next=/app/acme/"
    assert store_events(tenant) == [("store.password_changed", {"user": "olivia", "by": "olivia"})]
    assert [t for t, _ in store_events(other_tenant)] == ["store.password_changed"]
    fresh = Client()
    assert fresh.post("/app/login/", {"username": "olivia", "password": NEW_PASSWORD}).status_code == 302


def test_the_account_pages_need_a_signed_in_person(tenant, owner):
    for path in ("/app/account/password/", "/app/account/two-factor/", "/app/account/two-factor/off/"):
        response = Client().post(path)
        assert response.status_code == 302 and response["Location"] == f"/app/login/?next={path}"
    assert client_for(owner).get("/app/account/two-factor/off/").status_code == 405
