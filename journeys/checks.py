"""System checks for hearing back from the ESP."""

from django.conf import settings
from django.core import checks

# anymail backends that never talk to an ESP, so no ESP will call our tracking webhooks.
LOCAL_BACKENDS = {"anymail.backends.test.EmailBackend", "anymail.backends.console.EmailBackend"}


def tracking_webhooks_secured(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A real ESP backend with no ANYMAIL_WEBHOOK_SECRET leaves /anymail/<esp>/tracking/ open:
    anyone could post a fake bounce or complaint and suppress a customer (Mailgun alone is
    protected by its signature instead)."""
    backend = getattr(settings, "EMAIL_BACKEND", "")
    if not backend.startswith("anymail.backends.") or backend in LOCAL_BACKENDS or "mailgun" in backend:
        return []
    if (getattr(settings, "ANYMAIL", None) or {}).get("WEBHOOK_SECRET"):
        return []
    return [checks.Warning(
        "ESP tracking webhooks accept unauthenticated posts.",
        hint="Set ANYMAIL_WEBHOOK_SECRET=user:pass and put the same credentials in the webhook URL you give "
             "your ESP (https://user:pass@host/anymail/<esp>/tracking/).",
        id="journeys.W001",
    )]
