"""System checks for hearing back from the ESP."""

from django.conf import settings
from django.core import checks

# anymail backends that never talk to an ESP, so no ESP will call our tracking webhooks.
LOCAL_BACKENDS = {"anymail.backends.test.EmailBackend", "anymail.backends.console.EmailBackend"}


def tracking_webhooks_secured(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """The tracking webhooks (journeys/tracking.py) refuse every post without ANYMAIL_WEBHOOK_SECRET's basic
    auth, and every post to an ESP that signs them without its signing key: with a real ESP configured
    and either missing, its events are all refused. (Production does not start so; settings.py.)"""
    backend = getattr(settings, "EMAIL_BACKEND", "")
    if not backend.startswith("anymail.backends.") or backend in LOCAL_BACKENDS:
        return []
    anymail = getattr(settings, "ANYMAIL", None) or {}
    missing = [] if anymail.get("WEBHOOK_SECRET") else ["WEBHOOK_SECRET"]
    signing = getattr(settings, "ESP_WEBHOOK_SIGNING_SETTINGS", {}).get(backend.split(".")[2])
    if signing and not anymail.get(signing):
        missing.append(signing)
    if not missing:
        return []
    names = " and ".join(f"ANYMAIL_{name}" for name in missing)
    return [checks.Warning(
        f"ESP tracking webhooks refuse every post: {names} not set.",
        hint=f"Set {names}, and put the ANYMAIL_WEBHOOK_SECRET credentials (user:pass) in the webhook URL you give "
             "your ESP (https://user:pass@host/anymail/<esp>/tracking/).",
        id="journeys.W001",
    )]
