"""Team invitations: nobody joins a store without accepting the emailed link; inviting answers the same
whether the address has an account; a GET of the link changes nothing; the token is stored hashed."""

import datetime as dt
import hashlib
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from lifecycle import clock
from lifecycle.models import Event, Invitation, Membership
from workspace.invitations import invitation_revoke

from .conftest import PASSWORD, client_for, make_user

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
NEW_PASSWORD = "plum orchard lantern 42"  # noqa: S105 - a test password


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def owner(tenant):
    return make_user("olivia", tenant, Membership.Role.OWNER)


@pytest.fixture
def as_owner(owner):
    return client_for(owner)


def team_url(tenant) -> str:
    return reverse("workspace:settings-team", kwargs={"tenant": tenant.slug})


def invite(as_owner, tenant, email: str, role: str = "marketer"):
    return as_owner.post(team_url(tenant), {"email": email, "role": role})


def link_in_last_email() -> str:
    return re.search(r"http://\S+/app/invite/[A-Za-z0-9_-]{43}/", mail.outbox[-1].body).group(0)


def path_of(link: str) -> str:
    return link.split("127.0.0.1:8000", 1)[1]


def members(tenant) -> list[tuple[str, str]]:
    return sorted(Membership.objects.filter(tenant=tenant).values_list("user__username", "role"))


def state(tenant) -> str:
    return json.dumps({
        "members": members(tenant),
        "invitations": list(Invitation.objects.for_tenant(tenant).order_by("pk").values()),
        "users": list(get_user_model().objects.order_by("pk").values("pk", "username", "password")),
        "events": Event.objects.for_tenant(tenant).count(),
    }, default=str, sort_keys=True)


def normalised(response, email: str) -> str:
    body = response.content.decode().replace(email, "EMAIL")
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", body)
    return re.sub(r"invitation[s]?[-/]\d+", "INVITATION", body)


def test_inviting_adds_no_one_and_answers_the_same_for_known_and_unknown_addresses(as_owner, tenant, other_tenant):
    gus = make_user("gus", other_tenant)  # an account in another store
    known = invite(as_owner, tenant, "GUS@example.com")
    assert known.status_code == 200
    assert "Invitation sent to gus@example.com" in known.content.decode()
    assert ("gus", "marketer") not in members(tenant)
    assert not Membership.objects.filter(tenant=tenant, user=gus).exists()
    invitation_revoke(tenant=tenant, invitation=Invitation.objects.for_tenant(tenant).get(), by="olivia")

    unknown = invite(as_owner, tenant, "nobody@example.com")
    assert unknown.status_code == 200
    assert normalised(known, "gus@example.com") == normalised(unknown, "nobody@example.com")
    assert not get_user_model().objects.filter(email__iexact="nobody@example.com").exists()
    assert members(tenant) == [("olivia", "owner"), ("owner@acme.test", "owner")]
    # Each address got its link by email, and nothing else got one.
    assert [m.to for m in mail.outbox] == [["gus@example.com"], ["nobody@example.com"]]
    assert mail.outbox[-1].subject == "olivia invited you to Acme Coffee on Lifecycle"


def test_the_token_is_stored_hashed_and_shown_to_no_one_but_the_address(as_owner, tenant):
    response = invite(as_owner, tenant, "new.hire@example.com")
    token = link_in_last_email().rstrip("/").rsplit("/", 1)[1]
    invitation = Invitation.objects.for_tenant(tenant).get()
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in state(tenant)
    assert token not in json.dumps([e.data for e in Event.objects.for_tenant(tenant)])
    assert token not in response.content.decode()
    assert token not in as_owner.get(team_url(tenant)).content.decode()
    assert (invitation.email, invitation.role, invitation.invited_by.username) == ("new.hire@example.com", "marketer",
                                                                                    "olivia")
    assert (invitation.created_at, invitation.expires_at) == (NOW, NOW + dt.timedelta(days=7))


def test_a_get_of_the_link_changes_nothing_whoever_opens_it(as_owner, tenant, other_tenant):
    gus = make_user("gus", other_tenant)
    invite(as_owner, tenant, "gus@example.com", "viewer")
    path = path_of(link_in_last_email())
    before = state(tenant)
    for client in (Client(), client_for(gus), as_owner):
        for method in ("get", "head"):
            assert getattr(client, method)(path).status_code == 200
    assert state(tenant) == before
    page = client_for(gus).get(path).content.decode()
    assert "olivia invited <strong>gus@example.com</strong> to Acme Coffee's team on Lifecycle, as <strong>viewer</strong>" in page
    assert "Join Acme Coffee</button>" in page


def test_the_invited_account_joins_by_accepting_while_signed_in(as_owner, tenant, other_tenant):
    gus = make_user("gus", other_tenant)
    invite(as_owner, tenant, "gus@example.com", "viewer")
    path = path_of(link_in_last_email())
    as_gus = client_for(gus)
    response = as_gus.post(path)
    assert (response.status_code, response["Location"]) == (302, "/app/acme/")
    assert ("gus", "viewer") in members(tenant)
    invitation = Invitation.objects.for_tenant(tenant).get()
    assert (invitation.accepted_at, invitation.accepted_by) == (NOW, gus)
    assert Event.objects.for_tenant(tenant).filter(type="store.member_added").get().data == {
        "user": "gus", "role": "viewer", "via": "invitation", "invited_by": "olivia"}
    assert as_gus.get("/app/acme/").status_code == 200
    # The link is used up.
    again = Client().get(path)
    assert again.status_code == 410
    assert "This invitation has already been accepted." in again.content.decode()


def test_an_existing_account_must_sign_in_first(as_owner, tenant, other_tenant):
    gus = make_user("gus", other_tenant)
    invite(as_owner, tenant, "gus@example.com")
    path = path_of(link_in_last_email())
    signed_out = Client()
    page = signed_out.get(path).content.decode()
    assert f'href="/app/login/?next={path}">Sign in</a>' in page
    before = state(tenant)
    response = signed_out.post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 409
    assert "An account for gus@example.com exists already: sign in with it to join Acme Coffee." in response.content.decode()
    assert state(tenant) == before
    gus.refresh_from_db()
    assert gus.check_password(PASSWORD)
    # Signing in and coming back accepts.
    signed_out.post(f"/app/login/?next={path}", {"username": "gus", "password": PASSWORD, "next": path})
    assert signed_out.post(path).status_code == 302
    assert ("gus", "marketer") in members(tenant)


def test_accepting_as_another_signed_in_user_is_refused(as_owner, tenant, other_tenant):
    oscar = make_user("oscar", other_tenant)
    invite(as_owner, tenant, "gus@example.com")
    path = path_of(link_in_last_email())
    as_oscar = client_for(oscar)
    assert "this invitation is for gus@example.com" in as_oscar.get(path).content.decode()
    before = state(tenant)
    for data in ({}, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}):
        response = as_oscar.post(path, data)
        assert response.status_code == 403
        assert ("You are signed in as oscar, but this invitation is for gus@example.com."
                in response.content.decode())
    assert state(tenant) == before
    assert as_oscar.get("/app/acme/").status_code == 404


def test_a_new_person_chooses_a_password_and_joins(as_owner, tenant):
    invite(as_owner, tenant, "New.Hire@Example.com", "marketer")
    path = path_of(link_in_last_email())
    newcomer = Client()
    before = state(tenant)
    mismatch = newcomer.post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"})
    assert mismatch.status_code == 400
    assert "The two passwords differ: type the same one twice." in mismatch.content.decode()
    weak = newcomer.post(path, {"password1": "hire1", "password2": "hire1"})
    assert weak.status_code == 400
    assert "This password is too short." in weak.content.decode()
    assert state(tenant) == before

    response = newcomer.post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert (response.status_code, response["Location"]) == (302, "/app/acme/")
    user = get_user_model().objects.get(username="new.hire@example.com")
    assert user.email == "new.hire@example.com" and user.check_password(NEW_PASSWORD)
    assert ("new.hire@example.com", "marketer") in members(tenant)
    assert newcomer.get("/app/acme/").status_code == 200  # signed in
    assert Invitation.objects.for_tenant(tenant).get().accepted_by == user


@pytest.mark.parametrize(("spoil", "status", "message"), [
    ("expire", 410, "This invitation has expired. Ask the store&#x27;s owner to invite you again."),
    ("revoke", 410, "This invitation was withdrawn by the store&#x27;s owner."),
    ("reinvite", 410, "This invitation was withdrawn by the store&#x27;s owner."),
    ("unknown", 404, "This invitation link is not valid."),
])
def test_expired_withdrawn_and_unknown_links_get_a_page_that_says_so(as_owner, tenant, other_tenant, spoil, status,
                                                                      message):
    gus = make_user("gus", other_tenant)
    invite(as_owner, tenant, "gus@example.com")
    path = path_of(link_in_last_email())
    if spoil == "expire":
        clock.advance(dt.timedelta(days=7, seconds=1))
    elif spoil == "revoke":
        pk = Invitation.objects.for_tenant(tenant).get().pk
        revoke = as_owner.post(reverse("workspace:settings-team-invitation-revoke",
                                       kwargs={"tenant": tenant.slug, "invitation_id": pk}))
        assert revoke.status_code == 302
    elif spoil == "reinvite":
        invite(as_owner, tenant, "gus@example.com")  # a new link withdraws the old one
        assert path_of(link_in_last_email()) != path
    else:
        path = "/app/invite/" + "A" * 43 + "/"
    before = state(tenant)
    for method in ("get", "post"):
        response = getattr(client_for(gus), method)(path)
        assert response.status_code == status
        assert message in response.content.decode()
    assert state(tenant) == before
    assert not Membership.objects.filter(tenant=tenant, user=gus).exists()


def test_pending_invitations_are_listed_and_only_an_owner_withdraws_them(as_owner, tenant, marketer, viewer):
    invite(as_owner, tenant, "gus@example.com", "viewer")
    invitation = Invitation.objects.for_tenant(tenant).get()
    revoke = reverse("workspace:settings-team-invitation-revoke",
                     kwargs={"tenant": tenant.slug, "invitation_id": invitation.pk})
    page = client_for(viewer).get(team_url(tenant)).content.decode()
    assert f'id="invitation-{invitation.pk}"' in page and "gus@example.com" in page
    assert "Withdraw" not in page
    before = state(tenant)
    for user in (marketer, viewer):
        assert client_for(user).post(revoke).status_code == 403
    assert state(tenant) == before
    assert "Withdraw</button>" in as_owner.get(team_url(tenant)).content.decode()
    assert as_owner.post(revoke).status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at == NOW
    assert f'id="invitation-{invitation.pk}"' not in as_owner.get(team_url(tenant)).content.decode()
    assert Event.objects.for_tenant(tenant).filter(type="store.invitation_revoked").get().data == {
        "email": "gus@example.com", "role": "viewer", "by": "olivia"}
