import json
import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.management.commands.serve_embedded import served_base_url
from lifecycle.errors import ServiceError
from lifecycle.models import Tenant
from lifecycle.tenants import store_connect
from workspace.store_settings import webhook_url

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")  # noqa: S104 - names compared, nothing bound
EMBEDDED_DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def public_base_url() -> str:
    """Where storefronts reach us: PUBLIC_BASE_URL when it is set; in the embedded profile without
    it, the address `make run` serves on (serve_embedded records it, `PORT=8001 make run` included)
    rather than the built-in default."""
    unset = "PUBLIC_BASE_URL" not in os.environ and settings.PUBLIC_BASE_URL == EMBEDDED_DEFAULT_BASE_URL
    if settings.EMBEDDED and unset:
        return served_base_url() or settings.PUBLIC_BASE_URL
    return settings.PUBLIC_BASE_URL


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
