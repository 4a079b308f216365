import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from lifecycle.errors import ServiceError
from lifecycle.models import StoreConnection
from lifecycle.tenants import store_rotate_secret


class Command(BaseCommand):
    help = "Install a new webhook secret; the previous one keeps verifying for --grace-hours (default 2)."

    def add_arguments(self, parser):
        parser.add_argument("connection", help="The connection id printed by connect_store.")
        parser.add_argument("--secret", required=True)
        parser.add_argument("--grace-hours", type=float, default=2.0)

    def handle(self, *args, connection, secret, grace_hours, **options):
        conn = StoreConnection.all_tenants.filter(public_id=connection).first()
        if conn is None:
            raise CommandError(f"no store connection {connection!r}")
        try:
            conn = store_rotate_secret(connection_=conn, secret=secret, grace=dt.timedelta(hours=grace_hours))
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps({"connection": conn.public_id,
                                      "previous_secret_valid_until": conn.previous_secret_valid_until.isoformat()}))
