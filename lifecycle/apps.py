from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "lifecycle"
    verbose_name = "Stores, customers and orders"

    def ready(self) -> None:
        from django.db.models import CharField, TextField

        from . import extreme_times
        from .api import schema  # noqa: F401 - registers the OpenAPI auth extension
        from .rls import Prefix

        extreme_times.install()

        # `field__prefix=…`: a prefix match that can use an index under row-level security.
        CharField.register_lookup(Prefix)
        TextField.register_lookup(Prefix)
