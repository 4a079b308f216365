"""People of two stores: acme (tenant A) has an owner, a marketer and a viewer; globex (B) a marketer."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from lifecycle.models import Customer, Membership
from tests.factories import order_payload

PASSWORD = "correct horse battery staple"  # noqa: S105 - test users only


def make_user(username: str, tenant=None, role: str = Membership.Role.MARKETER, **extra):
    user = get_user_model().objects.create_user(username=username, email=f"{username}@example.com",
                                                password=PASSWORD, **extra)
    if tenant is not None:
        Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def owner(tenant):
    return make_user("olivia", tenant, Membership.Role.OWNER)


@pytest.fixture
def marketer(tenant):
    return make_user("mara", tenant, Membership.Role.MARKETER)


@pytest.fixture
def viewer(tenant):
    return make_user("victor", tenant, Membership.Role.VIEWER)


@pytest.fixture
def outsider(other_tenant):
    """A marketer of globex only."""
    return make_user("oscar", other_tenant, Membership.Role.MARKETER)


@pytest.fixture
def as_marketer(marketer) -> Client:
    return client_for(marketer)


@pytest.fixture
def as_viewer(viewer) -> Client:
    return client_for(viewer)


@pytest.fixture
def as_outsider(outsider) -> Client:
    return client_for(outsider)


@pytest.fixture
def a_customer(api, tenant) -> Customer:
    """An order (and so a customer) in acme, through the public API."""
    response = api.post("/api/v1/orders", order_payload(
        external_id="A-1", customer={"external_id": "A-C", "email": "ada@a-store.example.com", "first_name": "Ada"}))
    assert response.status_code == 201, response.content
    return Customer.objects.for_tenant(tenant).get(external_id="A-C")
