import json

from django.core.management.base import BaseCommand, CommandError

from lifecycle.models import Tenant
from lifecycle.tenants import api_key_create, api_key_revoke


class Command(BaseCommand):
    help = "Create an API key for a tenant (shown once), or revoke one with --revoke <prefix>."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="default")
        parser.add_argument("--revoke", metavar="PREFIX")

    def handle(self, *args, slug, name, revoke, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant with slug {slug!r}")
        if revoke:
            if not api_key_revoke(tenant=tenant, prefix=revoke):
                raise CommandError(f"no active key with prefix {revoke!r} for {slug}")
            self.stdout.write(json.dumps({"tenant": slug, "revoked": revoke}))
            return
        api_key, full = api_key_create(tenant=tenant, name=name)
        self.stdout.write(json.dumps({"tenant": slug, "api_key": full, "prefix": api_key.prefix}))
