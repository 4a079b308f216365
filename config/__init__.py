"""Wiring only: settings, URLs, the Celery app and WSGI. The one package that names every app."""

from .celery import app as celery_app

__all__ = ("celery_app",)
