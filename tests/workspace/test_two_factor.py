"""Two-factor sign-in: setup with a confirming code, the code step after the password, replays, recovery codes,
lockout shared with wrong passwords, the store's requirement, and the operators' /admin/."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from lifecycle.models import Event, Membership, Tenant
from lifecycle.two_factor import recovery_digest
from tests.factories import order_payload
from workspace.views import THROTTLED, WRONG_CODE

from .conftest import PASSWORD, client_for, make_user
from .test_cross_tenant_pages import UNSCOPED, workspace_routes
from .two_factor_support import code, recovery_codes_on, secret_on

pytestmark = pytest.mark.django_db

SETUP = "/app/account/two-factor/"
LIMIT = 10


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def events(tenant, type_: str) -> list[dict]:
    return list(Event.objects.for_tenant(tenant).filter(type=type_).order_by("pk").values_list("data", flat=True))


def enable(client: Client) -> tuple[str, list[str]]:
    """Set up two-factor on the signed-in client's account; returns the secret and the recovery codes."""
    secret = secret_on(client.get(SETUP).content.decode())
    response = client.post(SETUP, {"code": code(secret)})
    assert response.status_code == 201, response.content.decode()
    return secret, recovery_codes_on(response.content.decode())


def password_step(username: str, *, ip: str = "10.0.0.1", next_url: str = "/app/acme/") -> tuple[Client, object]:
    client = Client(REMOTE_ADDR=ip)
    response = client.post(f"/app/login/?next={next_url}", {"username": username, "password": PASSWORD})
    return client, response


def signed_in_with_code(username: str, secret: str, **kwargs) -> Client:
    client, _ = password_step(username, **kwargs)
    response = client.post("/app/login/code/", {"code": code(secret, steps_ahead=1), "next": "/app/acme/"})
    assert response.status_code == 302 and response["Location"] == "/app/acme/", response.content.decode()
    return client


def test_setup_shows_a_qr_code_and_a_wrong_code_turns_nothing_on(tenant, owner):
    client = client_for(owner)
    page = client.get(SETUP).content.decode()
    assert "<svg" in page and 'id="totp-secret"' in page
    assert not TOTPDevice.objects.exists()  # a GET saves nothing
    secret = secret_on(page)
    assert secret_on(client.get(SETUP).content.decode()) == secret  # a reload shows the same secret
    wrong = "000000" if code(secret) != "000000" else "111111"
    response = client.post(SETUP, {"code": wrong})
    assert response.status_code == 400
    assert "That code is not right" in response.content.decode()
    assert TOTPDevice.objects.get(user=owner).confirmed is False
    assert StaticToken.objects.count() == 0
    assert events(tenant, "store.member_2fa_enabled") == []


def test_setup_with_the_apps_code_turns_it_on_and_shows_recovery_codes_once(tenant, owner):
    client = client_for(owner)
    _secret, codes = enable(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert TOTPDevice.objects.get(user=owner).confirmed is True
    stored = set(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True))
    assert stored == {recovery_digest(c) for c in codes}  # digests, never the codes
    assert not stored & set(codes)
    again = client.get(SETUP).content.decode()
    assert 'id="two-factor-on"' in again and not any(c in again for c in codes)
    assert events(tenant, "store.member_2fa_enabled") == [{"user": "olivia", "by": "olivia"}]
    # The session that confirmed the device counts as verified: the store's pages open.
    assert client.get("/app/acme/").status_code == 200


def test_the_password_alone_does_not_sign_in_a_person_with_two_factor(tenant, owner):
    enable(client_for(owner))
    client, response = password_step("olivia")
    assert response.status_code == 302 and response["Location"].startswith("/app/login/code/?next=")
    assert client.get("/app/acme/")["Location"] == "/app/login/?next=/app/acme/"


def test_a_wrong_code_is_refused_and_counted_then_the_right_one_signs_in(tenant, owner):
    secret, _codes = enable(client_for(owner))
    client, _ = password_step("olivia")
    right = code(secret, steps_ahead=1)
    wrong = "123456" if right != "123456" else "654321"
    response = client.post("/app/login/code/", {"code": wrong, "next": "/app/acme/"})
    assert response.status_code == 400 and WRONG_CODE in response.content.decode()
    assert TOTPDevice.objects.get(user=owner).throttling_failure_count == 1
    assert client.get("/app/acme/").status_code == 302  # still signed out
    # At once, even the right code waits out the device's throttle (and this try counts too).
    throttled = client.post("/app/login/code/", {"code": right, "next": "/app/acme/"})
    assert throttled.status_code == 400 and THROTTLED in throttled.content.decode()
    time.sleep(2.1)  # 1 s after the first failure, 2 s after the second
    response = client.post("/app/login/code/", {"code": right, "next": "/app/acme/"})
    assert response.status_code == 302 and response["Location"] == "/app/acme/"
    assert client.get("/app/acme/").status_code == 200
    assert TOTPDevice.objects.get(user=owner).throttling_failure_count == 0


def test_a_code_that_signed_in_once_is_refused_the_second_time(tenant, owner):
    secret, _codes = enable(client_for(owner))
    used = code(secret, steps_ahead=1)
    first, _ = password_step("olivia")
    assert first.post("/app/login/code/", {"code": used, "next": "/app/acme/"})["Location"] == "/app/acme/"
    second, _ = password_step("olivia", ip="10.0.0.2")
    replay = second.post("/app/login/code/", {"code": used, "next": "/app/acme/"})
    assert replay.status_code == 400 and WRONG_CODE in replay.content.decode()
    assert second.get("/app/acme/").status_code == 302


def test_a_recovery_code_signs_in_once(tenant, owner):
    _secret, codes = enable(client_for(owner))
    first, _ = password_step("olivia")
    response = first.post("/app/login/code/", {"code": codes[3].lower(), "next": "/app/acme/"}, follow=True)
    assert response.status_code == 200 and response.redirect_chain[0][0] == "/app/acme/"
    assert "9 left" in response.content.decode()
    assert StaticToken.objects.filter(device__user=owner).count() == 9
    second, _ = password_step("olivia", ip="10.0.0.2")
    again = second.post("/app/login/code/", {"code": codes[3], "next": "/app/acme/"})
    assert again.status_code == 400
    assert second.get("/app/acme/").status_code == 302
    assert StaticToken.objects.filter(device__user=owner).count() == 9


def test_guessing_codes_locks_out_like_guessing_passwords(tenant, owner):
    secret, _codes = enable(client_for(owner))
    client, _ = password_step("olivia", ip="10.5.5.5")
    statuses = [client.post("/app/login/code/", {"code": f"{i:06d}"}).status_code for i in range(LIMIT)]
    assert statuses == [400] * (LIMIT - 1) + [429]
    # Locked: the right code is refused, and so is the password from another address.
    locked = client.post("/app/login/code/", {"code": code(secret, steps_ahead=1)})
    assert locked.status_code == 429
    assert client.get("/app/acme/").status_code == 302
    _other, again = password_step("olivia", ip="10.6.6.6")
    assert again.status_code == 429


def test_the_code_step_without_a_password_first_is_sent_back_to_sign_in(tenant, owner):
    enable(client_for(owner))
    response = Client().post("/app/login/code/", {"code": "123456"})
    assert response.status_code == 302 and response["Location"] == "/app/login/"


def test_a_session_signed_in_before_the_device_was_set_up_must_give_a_code(tenant, owner):
    older = client_for(owner)
    enable(client_for(owner))
    response = older.get("/app/acme/customers/")
    assert response.status_code == 302
    assert response["Location"] == "/app/login/code/?next=%2Fapp%2Facme%2Fcustomers%2F"


# --- the store's requirement -----------------------------------------------------------------


def test_an_owner_requires_two_factor_and_a_member_without_it_reaches_only_the_setup(tenant, owner, marketer, api):
    owner_client = client_for(owner)
    enable(owner_client)
    security = reverse("workspace:settings-security", kwargs={"tenant": "acme"})
    assert owner_client.post(security, {"require_two_factor": "on"}).status_code == 302
    assert Tenant.objects.get(pk=tenant.pk).require_two_factor is True
    assert events(tenant, "store.two_factor_required_changed") == [
        {"changes": {"require_two_factor": [False, True]}, "by": "olivia"}]
    mara = client_for(marketer)
    before = Event.objects.for_tenant(tenant).count()
    routes = {name: params for name, params in workspace_routes().items() if name not in UNSCOPED}
    assert len(routes) > 40
    for name, params in sorted(routes.items()):
        # Any id: the detour comes before the page looks anything up.
        path = reverse(name, kwargs={"tenant": "acme", **{p: 1 for p in params}})
        for method in ("get", "post"):
            response = getattr(mara, method)(path)
            assert response.status_code == 302, (name, method)
            assert response["Location"].startswith(f"{SETUP}?next="), (name, method)
    assert Event.objects.for_tenant(tenant).count() == before
    assert Tenant.objects.get(pk=tenant.pk).require_two_factor is True
    page = mara.get(f"{SETUP}?next=/app/acme/").content.decode()
    assert "Acme Coffee requires two-factor sign-in for every member" in page
    assert mara.get("/app/account/password/").status_code == 200
    # The store's API key is not a person: it is unaffected.
    assert api.post("/api/v1/orders", order_payload(external_id="A-2FA")).status_code == 201
    # Once the marketer sets it up, the store opens.
    enable(mara)
    assert mara.get("/app/acme/").status_code == 200


@pytest.mark.parametrize("role", ["viewer", "marketer"])
def test_a_viewer_or_marketer_cannot_change_the_requirement(tenant, role):
    member = make_user(role, tenant, role)
    client = client_for(member)
    enable(client)
    before = Event.objects.for_tenant(tenant).count()
    response = client.post(reverse("workspace:settings-security", kwargs={"tenant": "acme"}),
                           {"require_two_factor": "on"})
    assert response.status_code == 403
    assert Tenant.objects.get(pk=tenant.pk).require_two_factor is False
    assert Event.objects.for_tenant(tenant).count() == before


def test_an_owner_without_two_factor_cannot_require_it(tenant, owner):
    response = client_for(owner).post(reverse("workspace:settings-security", kwargs={"tenant": "acme"}),
                                      {"require_two_factor": "on"})
    assert response.status_code == 400
    assert "Set up two-factor sign-in for yourself first" in response.content.decode()
    assert Tenant.objects.get(pk=tenant.pk).require_two_factor is False
    assert events(tenant, "store.two_factor_required_changed") == []


def test_turning_two_factor_off_needs_a_current_code_and_is_refused_where_a_store_requires_it(tenant, owner):
    client = client_for(owner)
    secret, _codes = enable(client)
    off = "/app/account/two-factor/off/"
    wrong = client.post(off, {"code": "000000" if code(secret) != "000000" else "111111"})
    assert wrong.status_code == 400 and TOTPDevice.objects.filter(user=owner, confirmed=True).count() == 1
    Tenant.objects.filter(pk=tenant.pk).update(require_two_factor=True)
    time.sleep(1.1)  # the device's throttle after the wrong code
    required = client.post(off, {"code": code(secret, steps_ahead=1)})
    assert required.status_code == 400 and "requires two-factor" in required.content.decode()
    assert TOTPDevice.objects.filter(user=owner).count() == 1
    assert events(tenant, "store.member_2fa_disabled") == []
    Tenant.objects.filter(pk=tenant.pk).update(require_two_factor=False)
    assert client.post(off, {"code": code(secret, steps_ahead=1)}).status_code == 302
    assert TOTPDevice.objects.filter(user=owner).count() == 0 and StaticToken.objects.count() == 0
    assert events(tenant, "store.member_2fa_disabled") == [{"user": "olivia", "by": "olivia"}]


# --- the operators' /admin/ -------------------------------------------------------------------


def test_an_operator_with_two_factor_gives_the_code_at_the_admin_sign_in(db):
    root = get_user_model().objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)
    secret, _codes = enable(client_for(root))
    client = Client()
    without = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})
    assert without.status_code == 200 and "two-factor code" in without.content.decode()
    assert client.get("/admin/").status_code == 302
    with_code = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD,
                                                            "otp_token": code(secret, steps_ahead=1)})
    assert with_code.status_code == 302 and with_code["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    # A session of the operator that never gave the code is refused.
    assert client_for(root).get("/admin/").status_code == 302


def test_an_operator_without_two_factor_still_signs_in_with_the_password(db):
    get_user_model().objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_store_member_is_never_let_into_the_admin_even_with_two_factor(tenant, owner):
    secret, _codes = enable(client_for(owner))
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "olivia", "password": PASSWORD,
                                                          "otp_token": code(secret, steps_ahead=1)})
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302
    assert Membership.objects.filter(user=owner).count() == 1
