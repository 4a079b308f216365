import pytest

from config.celery import app


@pytest.fixture(autouse=True)
def _celery_eager():
    """Tasks queued on commit (a code webhook) run in the test's process."""
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = False, False
