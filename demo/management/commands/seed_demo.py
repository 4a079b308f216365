import json
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from demo.simulation import Params, store_simulate
from journeys.io import library_install, library_keys
from journeys.models import Journey
from lifecycle import clock
from lifecycle.models import ApiKey, Membership, StoreConnection, Tenant
from lifecycle.tenants import api_key_create, store_connect, tenant_create

DEMO_SLUG = "demo"
# A year of a small store: enough for the dashboards' lift to leave "not enough data" behind at the
# default 90 days, and seeded in well under a minute on SQLite (make run).
DEMO_CUSTOMERS = 3000
# The simulated "Second order nudge" journey's true effect on a second order within 30 days.
DEMO_TRUE_LIFT = 0.10
DEMO_SHOP = "demo-coffee.myshopify.com"
DEMO_SHOPIFY_SECRET = "demo-shopify-secret"  # noqa: S105 - the embedded demo's published test secret

class Command(BaseCommand):
    help = ("Create (or refresh) the demo store: an admin login, an API key, a Shopify connection and a simulated "
            "year of orders, journeys, emails and answers.")

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=DEMO_CUSTOMERS,
                            help="Simulated customers (demo/simulation): a year of orders, emails and answers.")
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
            installed = _install_demo_journeys(tenant)
            simulated = store_simulate(tenant=tenant, params=Params(customers=customers, days=365,
                                                                    true_lift=DEMO_TRUE_LIFT, seed=7))
            summary = (f"{simulated.tally.orders} simulated orders of {simulated.tally.customers} customers, "
                       f"{installed} journeys from the library; '{simulated.world.nudge.name}' has a true lift of "
                       f"{DEMO_TRUE_LIFT * 100:+.0f} points")
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
    result = library_install(tenant=tenant, keys=[k for k in library_keys() if k not in DEMO_LEFT_TO_INSTALL])
    Journey.objects.for_tenant(tenant).filter(library_key__in=DEMO_ACTIVE_JOURNEYS).update(
        status=Journey.Status.ACTIVE)
    return Journey.objects.for_tenant(tenant).exclude(library_key="").count() if result else 0
