import json
import os

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from lifecycle import clock
from lifecycle.tenants import tenant_create
from tests.rls_support import app_role  # noqa: F401 - the fixture, for LIFECYCLE_TEST_RLS below


def pytest_collection_modifyitems(config, items):
    """make test-citus (LIFECYCLE_TEST_CITUS=1): a test that runs code as lifecycle_app (row-level security)
    runs on committed rows. Citus reaches the workers as the current role, on connections of its own, and
    refuses to read as lifecycle_app the shards the test's open transaction wrote as the owner."""
    if os.environ.get("LIFECYCLE_TEST_CITUS") != "1":
        return
    for item in items:
        if "rls" in item.nodeid.split("::")[0] or "row_level_security" in item.name or "app_role" in getattr(
                item, "fixturenames", ()):
            marker = item.get_closest_marker("django_db")
            item.add_marker(pytest.mark.django_db(**{**(marker.kwargs if marker else {}), "transaction": True}),
                            append=False)


@pytest.fixture(autouse=True)
def _row_level_security(request):
    """LIFECYCLE_TEST_RLS=1: every test's requests and tasks run as lifecycle_app (tests/rls_support.py)."""
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)
    if os.environ.get("LIFECYCLE_TEST_RLS") == "1" and uses_db:
        request.getfixturevalue("app_role")


@pytest.fixture(autouse=True)
def _isolated_clock_and_cache():
    clock.reset()
    cache.clear()
    yield
    clock.reset()


class Api:
    """A storefront developer's client: JSON in, JSON out, one tenant's key."""

    def __init__(self, key: str):
        self.key = key
        self.client = APIClient()

    def _headers(self, extra):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {self.key}"}
        for name, value in (extra or {}).items():
            headers["HTTP_" + name.upper().replace("-", "_")] = value
        return headers

    def post(self, path, body=None, *, raw: bytes | None = None, headers=None, content_type="application/json"):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(path, data=data, content_type=content_type, **self._headers(headers))

    def get(self, path, params=None, headers=None):
        return self.client.get(path, params or {}, **self._headers(headers))

    def delete(self, path, headers=None):
        return self.client.delete(path, **self._headers(headers))


@pytest.fixture
def tenant_and_key(db):
    return tenant_create(slug="acme", name="Acme Coffee", owner_email="owner@acme.test", currency="EUR",
                         time_zone="Europe/Berlin")


@pytest.fixture
def tenant(tenant_and_key):
    return tenant_and_key[0]


@pytest.fixture
def api(tenant_and_key):
    return Api(tenant_and_key[1])


@pytest.fixture
def other_tenant_and_key(db):
    return tenant_create(slug="globex", name="Globex Tea", owner_email="owner@globex.test", currency="USD")


@pytest.fixture
def other_tenant(other_tenant_and_key):
    return other_tenant_and_key[0]


@pytest.fixture
def other_api(other_tenant_and_key):
    return Api(other_tenant_and_key[1])


@pytest.fixture(autouse=True)
def _anymail_test_backend(settings):
    """Email leaves through anymail's test backend, which records each message's parameters."""
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"


@pytest.fixture
def browser(monkeypatch):
    """Debian's chromium through Playwright (tests/browser.py); skipped locally, a failure in CI, when missing."""
    from tests.browser import browser_fixture

    yield from browser_fixture(monkeypatch)
