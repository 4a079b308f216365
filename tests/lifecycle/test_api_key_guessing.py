"""Wrong API keys are counted per client address: past API_KEY_FAILURE_LIMIT within the window, every request
from that address is 429 (a right key included) until the window ends; other addresses are unaffected."""

import time

import pytest

pytestmark = pytest.mark.django_db

LIMIT = 5
WRONG = "lc_0123456789_not-the-secret"


@pytest.fixture(params=["redis", "cache"])
def counting(request, settings):
    """Production counts in Redis with one pipeline; the embedded profile, with no Redis, through the cache API."""
    settings.API_KEY_FAILURE_LIMIT = LIMIT
    settings.API_KEY_FAILURE_WINDOW_SECONDS = 600
    if request.param == "cache":
        settings.REDIS_URL = ""
    return request.param


def ping(api, key: str, ip: str):
    return api.client.post("/api/v1/ping", data="{}", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip)


def test_wrong_keys_from_one_address_lock_it_out_even_for_a_right_key(counting, api):
    codes = [ping(api, f"{WRONG}{i}", "203.0.113.7").status_code for i in range(LIMIT + 3)]
    assert codes == [401] * LIMIT + [429] * 3

    refused = ping(api, api.key, "203.0.113.7")
    assert refused.status_code == 429
    assert refused.json() == {
        "code": "auth.too_many_failures", "fields": {},
        "message": f"Too many requests with a wrong API key from your address: every request from it is refused "
                   f"for {refused['Retry-After']} s. Check the key your client sends."}
    assert 590 <= int(refused["Retry-After"]) <= 600

    # Another address with the right key is served; a wrong key from it is a plain 401.
    assert ping(api, api.key, "198.51.100.9").status_code == 200
    assert ping(api, WRONG, "198.51.100.9").status_code == 401


def test_below_the_limit_a_right_key_still_works(counting, api):
    for i in range(LIMIT - 1):
        assert ping(api, f"{WRONG}{i}", "203.0.113.8").status_code == 401
    assert ping(api, api.key, "203.0.113.8").status_code == 200


def test_malformed_keys_count_a_missing_header_and_a_revoked_key_do_not(counting, api, tenant):
    from lifecycle.models import ApiKey
    from lifecycle.tenants import api_key_create, api_key_revoke

    old, old_full = api_key_create(tenant=tenant, name="old")
    api_key_revoke(tenant=tenant, prefix=old.prefix)
    assert ApiKey.objects.for_tenant(tenant).get(pk=old.pk).revoked_at is not None
    for _ in range(LIMIT + 2):
        assert ping(api, old_full, "203.0.113.9").status_code == 401
        missing = api.client.post("/api/v1/ping", data="{}", content_type="application/json", REMOTE_ADDR="203.0.113.9")
        assert missing.status_code == 401
    assert ping(api, api.key, "203.0.113.9").status_code == 200
    # A key that is not even of the form lc_<prefix>_<secret> is a guess like any other.
    assert [ping(api, "garbage", "203.0.113.9").status_code for _ in range(LIMIT + 1)] == [401] * LIMIT + [429]
    assert ping(api, api.key, "203.0.113.9").status_code == 429


def test_the_lockout_ends_with_the_window(counting, api, settings):
    settings.API_KEY_FAILURE_WINDOW_SECONDS = 1
    for i in range(LIMIT):
        ping(api, f"{WRONG}{i}", "203.0.113.10")
    refused = ping(api, api.key, "203.0.113.10")
    assert (refused.status_code, refused["Retry-After"]) == (429, "1")
    time.sleep(1.5)
    assert ping(api, api.key, "203.0.113.10").status_code == 200
