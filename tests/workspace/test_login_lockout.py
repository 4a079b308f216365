"""Sign-in throttling (django-axes): /app/login/ and /admin/login/ lock a username, and an address, after
LOGIN_FAILURE_LIMIT (10) wrong passwords; the right password is refused until the cool-off has passed."""

import datetime as dt
import time

import pytest
from axes.utils import reset
from django.contrib.auth import get_user_model
from django.test import Client

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 10
LOCKED = "Too many failed sign-ins for this username or from your address"


@pytest.fixture(params=["axes.handlers.cache.AxesCacheHandler", "axes.handlers.database.AxesDatabaseHandler"],
                ids=["redis", "database"])
def handler(request, settings):
    """Production counts in Redis; the embedded profile, with no Redis, in the database."""
    settings.AXES_HANDLER = request.param
    # A fast hasher: the lockout, not PBKDF2's million rounds, is what these tests time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return request.param


def sign_in(client: Client, username: str, password: str, *, ip: str, path: str = "/app/login/"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def assert_locked(response) -> None:
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    body = response.content.decode()
    assert LOCKED in body and "Try again in 15 minutes" in body


def assert_signed_in(client: Client) -> None:
    assert client.get("/app/acme/").status_code == 200


def assert_signed_out(client: Client) -> None:
    assert client.get("/app/acme/")["Location"] == "/app/login/?next=/app/acme/"


def test_forty_wrong_passwords_for_one_account_from_forty_addresses_lock_it_right_one_included(handler, marketer):
    client = Client()
    statuses = [sign_in(client, "mara", f"guess-{i}", ip=f"10.0.0.{i + 1}").status_code for i in range(40)]
    assert statuses == [200] * (LIMIT - 1) + [429] * (40 - LIMIT + 1)
    right = sign_in(client, "mara", PASSWORD, ip="10.9.9.9")
    assert_locked(right)
    assert_signed_out(client)
    # Another account from the same addresses is not locked: it was one account's count.
    other = get_user_model().objects.create_user(username="nina", password=PASSWORD)
    assert other.pk
    assert sign_in(Client(), "nina", PASSWORD, ip="10.0.0.1").status_code == 302


def test_forty_wrong_passwords_from_one_address_over_many_accounts_lock_the_address(handler, tenant, marketer):
    client = Client()
    statuses = [sign_in(client, f"user{i}", "guess", ip="10.1.1.1").status_code for i in range(40)]
    assert statuses == [200] * (LIMIT - 1) + [429] * (40 - LIMIT + 1)
    assert_locked(sign_in(client, "mara", PASSWORD, ip="10.1.1.1"))
    assert_signed_out(client)
    # The account itself is not locked: from another address it signs in.
    elsewhere = Client()
    assert sign_in(elsewhere, "mara", PASSWORD, ip="10.2.2.2").status_code == 302
    assert_signed_in(elsewhere)


def test_the_admin_sign_in_is_locked_the_same_way(handler, db):
    get_user_model().objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)
    client = Client()
    statuses = [sign_in(client, "root", f"guess-{i}", ip="10.3.3.3", path="/admin/login/").status_code
                for i in range(40)]
    assert statuses == [200] * (LIMIT - 1) + [429] * (40 - LIMIT + 1)
    assert_locked(sign_in(client, "root", PASSWORD, ip="10.3.3.4", path="/admin/login/"))
    assert client.get("/admin/")["Location"] == "/admin/login/?next=/admin/"


def test_the_lockout_ends_after_the_cool_off(handler, settings, marketer):
    settings.AXES_COOLOFF_TIME = dt.timedelta(seconds=2)
    client = Client()
    for i in range(LIMIT):
        sign_in(client, "mara", f"guess-{i}", ip="10.4.4.4")
    locked = sign_in(client, "mara", PASSWORD, ip="10.4.4.5")
    assert (locked.status_code, locked["Retry-After"]) == (429, "2")
    assert "Try again in 1 minute;" in locked.content.decode()
    time.sleep(2.5)
    assert sign_in(client, "mara", PASSWORD, ip="10.4.4.5").status_code == 302
    assert_signed_in(client)


def test_an_operator_lifts_a_lockout_with_axes_reset(handler, marketer):
    client = Client()
    for i in range(LIMIT):
        sign_in(client, "mara", f"guess-{i}", ip="10.5.5.5")
    assert_locked(sign_in(client, "mara", PASSWORD, ip="10.5.5.6"))
    reset(username="mara")
    reset(ip="10.5.5.5")
    assert sign_in(client, "mara", PASSWORD, ip="10.5.5.5").status_code == 302
    assert_signed_in(client)


def test_wrong_passwords_below_the_limit_still_sign_in(handler, marketer):
    client = Client()
    for i in range(LIMIT - 1):
        assert "do not match" in sign_in(client, "mara", f"guess-{i}", ip="10.6.6.6").content.decode()
    assert sign_in(client, "mara", PASSWORD, ip="10.6.6.6").status_code == 302
    assert_signed_in(client)
