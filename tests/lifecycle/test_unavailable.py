"""While PostgreSQL or Redis is unreachable the API says 503 with Retry-After, never 500."""

import pytest
from django.db import connections

from lifecycle import throttling
from lifecycle.models import Order
from tests.factories import order_payload


@pytest.mark.django_db(transaction=True)
def test_database_down_is_503_then_recovers(api, tenant):
    conn = connections["default"]
    port = conn.settings_dict["PORT"]
    conn.close()
    conn.settings_dict["PORT"] = "1"  # nothing listens there: connecting fails like a stopped server
    try:
        down = api.post("/api/v1/orders", order_payload())
    finally:
        conn.settings_dict["PORT"] = port
        conn.close()

    assert down.status_code == 503
    assert down.json()["code"] == "service_unavailable"
    assert down["Retry-After"] == "5"
    up = api.post("/api/v1/orders", order_payload())
    assert up.status_code == 201
    assert Order.objects.for_tenant(tenant).count() == 1


@pytest.mark.django_db(transaction=True)
def test_redis_down_is_503_then_recovers(api, tenant, monkeypatch, settings):
    # The rate limit counts in Redis before the view runs; a Redis that refuses connections (restarting)
    # must not turn into a 500.
    redis_url = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    monkeypatch.setattr(throttling, "_client", None)

    down = api.post("/api/v1/orders", order_payload())

    assert down.status_code == 503
    assert down.json() == {"code": "service_unavailable", "message": "The service is briefly unavailable; retry shortly.",
                           "fields": {}}
    assert down["Retry-After"] == "5"
    assert Order.objects.for_tenant(tenant).count() == 0
    settings.REDIS_URL = redis_url  # Redis is back: the next request makes a new client
    monkeypatch.setattr(throttling, "_client", None)
    assert api.post("/api/v1/orders", order_payload()).status_code == 201
    assert Order.objects.for_tenant(tenant).count() == 1


def test_an_unexpected_error_is_still_a_500(rf):
    # Only unavailability maps to 503: a bug stays visible.
    from lifecycle.middleware import DatabaseUnavailableMiddleware

    def view(request):
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        DatabaseUnavailableMiddleware(view)(rf.get("/api/v1/ping"))
