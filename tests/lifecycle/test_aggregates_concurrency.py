"""Customer aggregates stay exact when two writers add orders for one customer at once.

Found by bench/ingest: two concurrent bulk imports sharing a returning customer each counted
only their own new orders, and the last to commit left order_count short.
"""

import threading

import pytest
from django.db import connection, transaction

from lifecycle import clock
from lifecycle.aggregates import refresh_aggregates
from lifecycle.models import Customer, Order
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db(transaction=True)


def paid_order(customer: Customer) -> Order:
    return OrderFactory(tenant=customer.tenant, customer=customer, paid_at=clock.now())


def test_two_writers_refreshing_one_customer_count_each_others_orders():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes writers by itself")
    customer = CustomerFactory()
    first_refreshed, second_started = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first_writer() -> None:
        try:
            with transaction.atomic():
                paid_order(customer)
                refresh_aggregates(customer.tenant, {customer.pk})
                first_refreshed.set()
                second_started.wait(5)
                threading.Event().wait(0.5)  # let the second writer reach its refresh and wait there
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
            first_refreshed.set()
        finally:
            connection.close()

    thread = threading.Thread(target=first_writer)
    thread.start()
    assert first_refreshed.wait(10)
    with transaction.atomic():
        paid_order(customer)
        second_started.set()
        refresh_aggregates(customer.tenant, {customer.pk})
    thread.join(10)

    assert not errors
    customer.refresh_from_db()
    assert customer.order_count == 2
    assert customer.total_spent == 40
