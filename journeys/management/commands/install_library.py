import json

from django.core.management.base import BaseCommand, CommandError

from journeys.io import library_install, library_keys
from lifecycle.errors import ServiceError

from ._common import tenant_or_error


class Command(BaseCommand):
    help = (
        "Install the built-in post-purchase journeys into a store, as drafts (nothing sends until a marketer "
        "activates one). Safe to run again: what is installed already is skipped. "
        'Prints {"installed": {key: id}, "skipped": {key: reason}}.'
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--only", nargs="+", metavar="KEY", help=f"Only these: {', '.join(library_keys())}.")

    def handle(self, *args, slug, only, **options):
        tenant = tenant_or_error(slug)
        try:
            result = library_install(tenant=tenant, keys=only)
        except ServiceError as exc:
            raise CommandError("; ".join(exc.fields.get("keys", [exc.message]))) from exc
        self.stdout.write(json.dumps({"installed": {key: j.pk for key, j in result.installed.items()},
                                      "skipped": result.skipped}))
