from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "lifecycle"
    verbose_name = "Stores, customers and orders"

    def ready(self) -> None:
        from .api import schema  # noqa: F401 - registers the OpenAPI auth extension
