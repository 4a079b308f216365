import json

from django.core.management.base import BaseCommand, CommandError

from journeys.deliverability import deliverability_status, marketing_resume
from lifecycle.models import Tenant


class Command(BaseCommand):
    help = ("Resume a store's marketing email after a deliverability pause (complaint or bounce rate too "
            "high); its rates then count afresh from now.")

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="The store's slug.")
        parser.add_argument("--by", default="", help="Who decided (kept on the store's timeline).")

    def handle(self, *args, tenant, by, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"no store with slug {tenant!r}")
        status = deliverability_status(found)
        if not marketing_resume(tenant=found, by=by or "resume_marketing command"):
            raise CommandError(f"{found.slug}'s marketing email is not paused (deliverability: {status['state']})")
        self.stdout.write(json.dumps({"tenant": found.slug, "resumed": True, "was_paused_for": status["reason"]}))
