"""Factories that carry their tenant, and payload builders shaped like real requests."""

import itertools
from typing import Any

import factory

from lifecycle.models import Customer, Order, Tenant

_seq = itertools.count(1000)


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Store {n}")
    slug = factory.Sequence(lambda n: f"store-{n}")
    currency = "EUR"
    time_zone = "Europe/Berlin"


class TenantOwnedFactory(factory.django.DjangoModelFactory):
    """Tenant-owned models refuse unscoped `objects`; factories write through `all_tenants`."""

    class Meta:
        abstract = True

    @classmethod
    def _get_manager(cls, model_class):
        return model_class.all_tenants


class CustomerFactory(TenantOwnedFactory):
    class Meta:
        model = Customer

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"cust-{n}")
    email = factory.Sequence(lambda n: f"shopper{n}@example.com")
    first_name = "Ada"


class OrderFactory(TenantOwnedFactory):
    class Meta:
        model = Order

    tenant = factory.SubFactory(TenantFactory)
    customer = factory.SubFactory(CustomerFactory, tenant=factory.SelfAttribute("..tenant"))
    external_id = factory.Sequence(lambda n: f"order-{n}")
    currency = "EUR"
    total = "20.00"


def order_payload(**overrides: Any) -> dict[str, Any]:
    """A valid POST /api/v1/orders body; override any top-level key."""
    n = next(_seq)
    body: dict[str, Any] = {
        "external_id": f"ord-{n}",
        "number": f"#{n}",
        "customer": {"external_id": f"c-{n}", "email": f"Shopper{n}@Example.com", "first_name": "Ada",
                     "last_name": "Lovelace", "locale": "de-DE", "marketing_consent": True},
        "currency": "EUR",
        "status": "paid",
        "placed_at": "2026-11-20T10:00:00+01:00",
        "total": "59.90",
        "discount_total": "5.00",
        "discount_codes": ["WELCOME5"],
        "lines": [
            {"product_external_id": "p-beans", "sku": "BEANS-1KG", "title": "House beans 1 kg", "quantity": 2,
             "unit_price": "24.95"},
            {"product_external_id": "p-filter", "sku": "FILTER-100", "title": "Paper filters", "quantity": 1,
             "unit_price": "15.00"},
        ],
    }
    body.update(overrides)
    return body
