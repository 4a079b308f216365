import json

from django.core.management.base import BaseCommand, CommandError

from journeys.io import journey_export
from journeys.models import Journey
from lifecycle.numbers import whole_number

from ._common import tenant_or_error


class Command(BaseCommand):
    help = "Print a journey as JSON (by name, or by id), ready for import_journey in this or another store."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("journey", help="The journey's name, or its id.")

    def handle(self, *args, slug, journey, **options):
        tenant = tenant_or_error(slug)
        journeys = Journey.objects.for_tenant(tenant)
        # A name wins over an id, so a journey called "2024" is still reachable by its name.
        found = journeys.filter(name=journey).first()
        if found is None and (pk := whole_number(journey, minimum=1)) is not None:
            found = journeys.filter(pk=pk).first()
        if found is None:
            raise CommandError(f"no journey named or numbered {journey!r} in {slug}")
        self.stdout.write(json.dumps(journey_export(found), indent=2, ensure_ascii=False))
