import os

from celery import Celery, signals

from lifecycle import periodic

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("lifecycle")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _beat_schedule(sender, **kwargs) -> None:
    """Beat's schedule is what the tasks declare with `lifecycle.periodic.every`, beside their code."""
    sender.loader.import_default_modules()
    sender.conf.beat_schedule = periodic.beat_schedule()


@signals.worker_init.connect
@signals.beat_init.connect
def _assume_rls_role(**kwargs) -> None:
    """Workers and beat act on tenants' data: their connections assume DATABASE_RLS_ROLE
    (lifecycle/rls.py), and with BACKGROUND_NICE they and their sessions yield the CPU to the
    API (lifecycle/session_priority.py). Eager tasks in a web process inherit that process's."""
    from lifecycle.rls import serve_as_role
    from lifecycle.session_priority import lower_background_priority

    serve_as_role()
    lower_background_priority()
