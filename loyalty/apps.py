from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "loyalty"

    def ready(self) -> None:
        # Registers the app's reaction to events (lifecycle/event_types.py says which and when). Imported
        # here because it imports models, which cannot be imported before the app registry is ready.
        from . import handlers, handlers_batch  # noqa: F401
