import atexit
import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "The embedded default: migrate, seed the demo store, start a Celery worker with beat, and serve."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true")

    def handle(self, *args, port, no_worker, **options):
        if not settings.EMBEDDED:
            raise CommandError("serve_embedded is for LIFECYCLE_PROFILE=embedded; use docker compose for production")
        if "PUBLIC_BASE_URL" not in os.environ:
            # Links in the demo's emails must point at this server, whatever its port.
            settings.PUBLIC_BASE_URL = os.environ["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(f"Database ready: {settings.DATABASES['default']['NAME']}")
        call_command("seed_demo")
        if not no_worker:
            worker = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "celery", "-A", "lifecycle", "worker", "--beat", "--loglevel=INFO",
                 "--concurrency=2", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")],
                env=os.environ.copy(),
            )
            atexit.register(_stop, worker)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            self.stdout.write(f"Celery worker and beat started (pid {worker.pid}) on {settings.CELERY_BROKER_URL}")
        self.stdout.write(self.style.SUCCESS(
            f"Serving on http://127.0.0.1:{port}/  — workspace: /app/  admin: /admin/  API docs: /api/docs/  schema: /api/schema/"))
        call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
