import json
import sys
from decimal import Decimal
from pathlib import Path

import pydantic
from django.core.management.base import BaseCommand, CommandError

from journeys.definition import JourneyIn
from journeys.io import journey_import
from lifecycle.api.errors import pydantic_fields
from lifecycle.errors import ServiceError

from ._common import tenant_or_error, write_fields


class Command(BaseCommand):
    help = (
        "Create or update a journey (matched by name) from its JSON, the format export_journey and "
        'GET /api/v1/journeys/<id> produce. Prints {"id": …, "name": …, "created": …}; problems are listed '
        "by field on stderr and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("path", help="A .json file, or - for standard input.")

    def handle(self, *args, slug, path, **options):
        tenant = tenant_or_error(slug)
        if path == "-":
            text = sys.stdin.read()
        else:
            file = Path(path)
            if not file.is_file():
                raise CommandError(f"{path}: no such file")
            text = file.read_text(encoding="utf-8")
        try:
            raw = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
        try:
            data = JourneyIn.model_validate(raw)
        except pydantic.ValidationError as exc:
            fields = pydantic_fields(exc)
            write_fields(self.stderr, fields)
            raise CommandError(f"the journey was not imported: {len(fields)} field(s) to fix") from exc
        try:
            journey, created = journey_import(tenant=tenant, data=data)
        except ServiceError as exc:
            write_fields(self.stderr, exc.fields)
            raise CommandError(f"the journey was not imported: {exc.message}") from exc
        self.stdout.write(json.dumps({"id": journey.pk, "name": journey.name, "created": created}))
