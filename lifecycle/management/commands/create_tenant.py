import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from lifecycle.models import Tenant
from lifecycle.tenants import tenant_create


class Command(BaseCommand):
    help = 'Create a store (tenant) with an owner and an API key. Prints {"tenant": …, "api_key": …}.'

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email")
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--currency", default="USD")

    def handle(self, *args, slug, name, owner_email, time_zone, currency, **options):
        if Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"a tenant with slug {slug!r} already exists")
        try:
            tenant, key = tenant_create(slug=slug, name=name, owner_email=owner_email, time_zone=time_zone,
                                        currency=currency.upper())
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            raise CommandError(problems) from exc
        self.stdout.write(json.dumps({"tenant": tenant.slug, "api_key": key}))
