import datetime as dt
import json
import random
import secrets
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from lifecycle import clock
from lifecycle.bulk import orders_bulk_ingest
from lifecycle.models import ApiKey, Membership, StoreConnection, Tenant
from lifecycle.services import api_key_create, store_connect, tenant_create

DEMO_SLUG = "demo"
DEMO_SHOP = "demo-coffee.myshopify.com"
DEMO_SHOPIFY_SECRET = "demo-shopify-secret"  # noqa: S105 - the embedded demo's published test secret
PRODUCTS = [
    ("p-espresso", "ESP-1KG", "Espresso roast, 1 kg", Decimal("29.00"), 30),
    ("p-filter", "FIL-500", "Filter roast, 500 g", Decimal("16.50"), 21),
    ("p-grinder", "GRD-01", "Burr grinder", Decimal("149.00"), None),
    ("p-papers", "PAP-100", "Paper filters (100)", Decimal("6.90"), 60),
    ("p-kettle", "KET-01", "Gooseneck kettle", Decimal("79.00"), None),
]
FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Edsger", "Frances", "Tim"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Dijkstra", "Allen"]


class Command(BaseCommand):
    help = "Create (or refresh) the demo store: an admin login, an API key, a Shopify connection and sample orders."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=60)
        parser.add_argument("--json", action="store_true", help="Print one JSON object instead of prose.")

    def handle(self, *args, customers, **options):
        password = secrets.token_urlsafe(9)
        with transaction.atomic():
            tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
            created = tenant is None
            if created:
                tenant, _ = tenant_create(slug=DEMO_SLUG, name="Demo Coffee Roasters", currency="EUR",
                                          time_zone="Europe/Berlin")
                tenant.sender_email = "hello@demo-coffee.example"
                tenant.postal_address = "Demo Coffee Roasters, Kaffeestraße 1, 10115 Berlin, Germany"
                tenant.save()
                store_connect(tenant=tenant, platform=StoreConnection.Platform.SHOPIFY, address=DEMO_SHOP,
                              secret=DEMO_SHOPIFY_SECRET)
            ApiKey.objects.for_tenant(tenant).filter(name="make run", revoked_at__isnull=True).update(
                revoked_at=clock.now())
            _, key = api_key_create(tenant=tenant, name="make run")
            user_model = get_user_model()
            admin, _ = user_model.objects.get_or_create(username="admin", defaults={"email": "admin@localhost"})
            admin.is_staff = admin.is_superuser = True
            admin.set_password(password)
            admin.save()
            Membership.objects.get_or_create(tenant=tenant, user=admin, defaults={"role": Membership.Role.OWNER})
        if created:
            result = orders_bulk_ingest(tenant=tenant, items=sample_orders(customers))
            installed = _install_demo_journeys(tenant)
            summary = f"{result.created} sample orders, {installed} journeys from the library"
        else:
            summary = "existing sample data"
        info = {"workspace_url": "/app/", "admin_url": "/admin/", "username": "admin", "password": password, "tenant": DEMO_SLUG,
                "api_key": key, "shopify_shop_domain": DEMO_SHOP, "shopify_webhook_secret": DEMO_SHOPIFY_SECRET}
        if options["json"]:
            self.stdout.write(json.dumps(info))
            return
        self.stdout.write(self.style.SUCCESS(f"Demo store '{DEMO_SLUG}' ready ({summary})."))
        for label, value in info.items():
            self.stdout.write(f"  {label:<24} {value}")


# Active in the demo so new orders posted to the API flow through; the rest stay drafts.
DEMO_ACTIVE_JOURNEYS = ("first-use-tips", "refund-follow-up")
# Left in the library: the first thing to try in the workspace is installing it, editing its email
# beside the preview, sending yourself a test and activating it.
DEMO_LEFT_TO_INSTALL = ("review-request",)


def _install_demo_journeys(tenant: Tenant) -> int:
    from journeys.io import library_install, library_keys
    from journeys.models import Journey

    result = library_install(tenant=tenant, keys=[k for k in library_keys() if k not in DEMO_LEFT_TO_INSTALL])
    Journey.objects.for_tenant(tenant).filter(library_key__in=DEMO_ACTIVE_JOURNEYS).update(
        status=Journey.Status.ACTIVE)
    return Journey.objects.for_tenant(tenant).exclude(library_key="").count() if result else 0


def sample_orders(customers: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    now = clock.now()
    orders = []
    for c in range(customers):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        customer = {"external_id": f"demo-c{c}", "email": f"{first}.{last}.{c}@example.com".lower(),
                    "first_name": first, "last_name": last, "locale": rng.choice(["en", "de", "fr"]),
                    "marketing_consent": rng.random() < 0.8}
        placed = now - dt.timedelta(days=rng.randint(20, 180), minutes=rng.randint(0, 1440))
        for n in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
            picks = rng.sample(PRODUCTS, rng.randint(1, 3))
            lines = [{"product_external_id": p[0], "sku": p[1], "title": p[2], "quantity": rng.randint(1, 2),
                      "unit_price": str(p[3])} for p in picks]
            total = sum(Decimal(line["unit_price"]) * line["quantity"] for line in lines)
            delivered = placed + dt.timedelta(days=rng.randint(2, 5))
            status = "delivered" if delivered < now else "paid"
            orders.append({
                "external_id": f"demo-{c}-{n}", "number": f"#{1001 + len(orders)}", "customer": customer,
                "currency": "EUR", "status": status, "placed_at": placed.isoformat(),
                "delivered_at": delivered.isoformat() if status == "delivered" else None,
                "total": str(total), "lines": lines,
            })
            placed = placed + dt.timedelta(days=rng.randint(15, 60))
            if placed > now:
                break
    return orders
