import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("lifecycle")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def _assume_rls_role(**kwargs) -> None:
    """Workers and beat act on tenants' data: their connections assume DATABASE_RLS_ROLE
    (lifecycle/rls.py). Eager tasks in a web process inherit that process's connections."""
    from lifecycle.rls import serve_as_role

    serve_as_role()
