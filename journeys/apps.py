from django.apps import AppConfig


class JourneysConfig(AppConfig):
    name = "journeys"

    def ready(self) -> None:
        from anymail.signals import tracking
        from django.core import checks

        from . import enrollment, enrollment_batch  # noqa: F401 - register journeys' reactions to events
        from .checks import tracking_webhooks_secured
        from .tracking import on_tracking

        # The one signal receiver in the project: anymail has no other way to hand events over.
        tracking.connect(on_tracking, dispatch_uid="journeys.tracking.on_tracking")
        checks.register(tracking_webhooks_secured)
