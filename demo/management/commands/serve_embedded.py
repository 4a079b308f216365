"""make run: migrate, seed the demo store, start a Celery worker with beat, and serve.

The console is for a person: what was set up, the demo's credentials, where things are. The
worker's and beat's per-task lines go to var/log/worker.log. Stopping (Ctrl-C, or SIGTERM to
this process) stops the worker too: a warm shutdown bounded by WORKER_STOP_SECONDS, then a kill
of its whole process group. Every task is safe to cut short (acks_late, idempotent sweeps that
beat schedules again), so nothing waits for a slow one.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from lifecycle import queues
from lifecycle.addresses import served_at_path

# How long a stopping worker may take to finish its tasks before it is killed.
WORKER_STOP_SECONDS = 3.0


def worker_log_path() -> Path:
    return settings.VAR_DIR / "log" / "worker.log"


def worker_command(*, concurrency: int) -> list[str]:
    """One worker with beat for everything: it consumes every queue (lifecycle/queues.py), where
    production gives each queue worker processes of its own (docker-compose.yml)."""
    return [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--loglevel=INFO",
            "--queues", ",".join(queues.QUEUES), f"--concurrency={concurrency}",
            "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")]


class Worker:
    """The embedded Celery worker with beat, in its own session (Ctrl-C in the terminal reaches
    only us: we decide how it stops), logging to a file."""

    def __init__(self, log_path: Path, *, concurrency: int = 2):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - the child writes to it until it stops
        self._stopping = threading.Event()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            worker_command(concurrency=concurrency), env=os.environ.copy(), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def watch(self, say) -> None:
        """Tell the console if the worker dies on its own: emails would silently stop going out."""
        def wait() -> None:
            code = self.process.wait()
            if not self._stopping.is_set():
                say(f"The Celery worker stopped by itself (exit code {code}); see {self.log_path}")
        threading.Thread(target=wait, name="worker-watch", daemon=True).start()

    def stop(self, timeout: float = WORKER_STOP_SECONDS) -> None:
        """SIGTERM to the worker (Celery's warm shutdown: its pool finishes the tasks in hand), at most
        `timeout` seconds, then SIGKILL to the whole group (the pool's children and beat with it)."""
        self._stopping.set()
        try:
            if self.process.poll() is None:
                self.process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=timeout)
            # The group may outlive its leader (a pool child finishing a task): end it either way.
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()
        finally:
            self._log.close()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _serve_at(port: int) -> None:
    if "PUBLIC_BASE_URL" not in os.environ:
        # Links in the demo's emails must point at this server, whatever its port.
        settings.PUBLIC_BASE_URL = os.environ["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    served_at_path().write_text(settings.PUBLIC_BASE_URL + "\n", encoding="utf-8")


def _exit_on_sigterm(*_args) -> None:
    # SystemExit unwinds runserver, and handle()'s `finally` stops the worker.
    raise SystemExit(0)


class Command(BaseCommand):
    help = "The embedded default: migrate, seed the demo store, start a Celery worker with beat, and serve."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true")

    def handle(self, *args, port, no_worker, **options):
        if not settings.EMBEDDED:
            raise CommandError("serve_embedded is for LIFECYCLE_PROFILE=embedded; use docker compose for production")
        _serve_at(port)
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(f"Database ready: {settings.DATABASES['default']['NAME']}")
        call_command("seed_demo")
        self.serve(port=port, worker=not no_worker)

    def serve(self, *, port: int, worker: bool = True) -> None:
        """Start the worker (unless told not to), serve until Ctrl-C or SIGTERM, then stop the worker."""
        _serve_at(port)
        running = None
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            if worker:
                running = Worker(worker_log_path())
                running.watch(lambda text: self.stderr.write(text))
                self.stdout.write(f"Celery worker and beat started (pid {running.pid}) on {settings.CELERY_BROKER_URL}; "
                                  f"their log: {running.log_path}")
            self.stdout.write(self.style.SUCCESS(
                f"Serving on http://127.0.0.1:{port}/  — workspace: /app/  admin: /admin/  API docs: /api/docs/  "
                f"schema: /api/schema/"))
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
        finally:
            if running is not None:
                self.stdout.write(f"Stopping the worker (at most {WORKER_STOP_SECONDS:g} s)…")
                running.stop()
