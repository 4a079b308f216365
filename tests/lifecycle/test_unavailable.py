"""While PostgreSQL is unreachable the API says 503 with Retry-After, never 500."""

import pytest
from django.db import connections

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
