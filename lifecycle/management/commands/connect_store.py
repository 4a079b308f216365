import json
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from lifecycle.addresses import public_base_url, webhook_url
from lifecycle.errors import ServiceError
from lifecycle.models import Tenant
from lifecycle.tenants import store_connect

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")  # noqa: S104 - names compared, nothing bound


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
        url = webhook_url(conn, base=public_base_url())
        self.stdout.write(json.dumps({"connection": conn.public_id, "platform": conn.platform, "webhook_url": url}))
        if urlsplit(url).hostname in LOCAL_HOSTS:
            self.stderr.write(f"Note: {urlsplit(url).hostname} is this machine; the storefront cannot reach it. "
                              "Set PUBLIC_BASE_URL to the address it can reach (your domain, or a tunnel to "
                              "this server) and start the server again.")
