"""Signing in, choosing a store, and what each role may do."""

import pytest
from django.test import Client

from journeys.models import Journey

from .conftest import PASSWORD, client_for, make_user

pytestmark = pytest.mark.django_db


def test_signed_out_visitors_are_sent_to_sign_in_and_come_back_afterwards(tenant, marketer):
    client = Client()
    response = client.get("/app/acme/customers/")
    assert response.status_code == 302
    assert response["Location"] == "/app/login/?next=/app/acme/customers/"

    wrong = client.post("/app/login/?next=/app/acme/customers/", {"username": "mara", "password": "nope"})
    assert wrong.status_code == 200
    assert "do not match" in wrong.content.decode()

    right = client.post("/app/login/", {"username": "mara", "password": PASSWORD, "next": "/app/acme/customers/"})
    assert (right.status_code, right["Location"]) == (302, "/app/acme/customers/")
    assert client.get("/app/acme/customers/").status_code == 200


def test_root_and_app_lead_a_member_of_one_store_straight_to_its_home(tenant, as_marketer):
    assert as_marketer.get("/")["Location"] == "/app/"
    assert as_marketer.get("/app/")["Location"] == "/app/acme/"
    page = as_marketer.get("/app/acme/")
    assert page.status_code == 200
    assert "Acme Coffee" in page.content.decode()


def test_a_member_of_two_stores_chooses_and_can_switch(tenant, other_tenant):
    user = make_user("both", tenant)
    from lifecycle.models import Membership

    Membership.objects.create(user=user, tenant=other_tenant, role=Membership.Role.VIEWER)
    client = client_for(user)
    picker = client.get("/app/").content.decode()
    assert 'href="/app/acme/"' in picker and 'href="/app/globex/"' in picker
    home = client.get("/app/globex/").content.decode()
    # The switcher lists both, the current one marked.
    assert 'href="/app/globex/" aria-current="page"' in home
    assert 'href="/app/acme/"' in home
    assert "both · viewer" in home


def test_another_stores_pages_are_404_not_403(tenant, as_outsider):
    for path in ("/app/acme/", "/app/acme/customers/", "/app/acme/journeys/", "/app/no-such-store/"):
        assert as_outsider.get(path).status_code == 404, path


def test_a_viewer_reads_but_cannot_write(tenant, as_viewer, viewer):
    journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, name="Welcome", trigger="order_paid")
    assert as_viewer.get(f"/app/acme/journeys/{journey.pk}/").status_code == 200
    refused = as_viewer.post(f"/app/acme/journeys/{journey.pk}/", {"name": "Changed"})
    assert refused.status_code == 403
    assert "you can look, but changes need a marketer or an owner" in refused.content.decode()
    journey.refresh_from_db()
    assert journey.name == "Welcome"


def test_sign_out_is_a_post_and_ends_the_session(tenant, as_marketer):
    assert as_marketer.get("/app/logout/").status_code == 405  # a link scanner cannot sign anyone out
    assert as_marketer.get("/app/acme/").status_code == 200
    assert as_marketer.post("/app/logout/")["Location"] == "/app/login/"
    assert as_marketer.get("/app/acme/").status_code == 302
