import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from lifecycle.models import Tenant
from lifecycle.services import ServiceError, store_connect


class Command(BaseCommand):
    help = "Connect a Shopify shop domain or a WooCommerce site URL; prints the webhook URL to register."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("platform", choices=["shopify", "woocommerce"])
        parser.add_argument("address", help="Shopify: my-shop.myshopify.com; WooCommerce: https://shop.example.com")
        parser.add_argument("--secret", required=True, help="The webhook signing secret the platform uses.")

    def handle(self, *args, slug, platform, address, secret, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant with slug {slug!r}")
        try:
            conn = store_connect(tenant=tenant, platform=platform, address=address, secret=secret)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps({
            "connection": conn.public_id,
            "platform": conn.platform,
            "webhook_url": settings.PUBLIC_BASE_URL + conn.webhook_path,
        }))
