"""ESP tracking webhooks: anymail's views behind a gate that fails closed, and the `tracking` signal receiver.

`urlpatterns` (mounted at /anymail/ by config/urls.py) serves every tracking endpoint anymail has,
each wrapped so that a post is refused before anything is read unless it proves where it came from:

- no or wrong HTTP basic auth (ANYMAIL_WEBHOOK_SECRET, which settings always provide): 401;
- auth right, but the ESP's own signature is missing or wrong, the body cannot be checked, or this
  ESP's signing key is not configured: 403;
- verified, but the body is not an event the ESP could have sent: 400.

None of those writes anything. A verified event goes to the signal receiver, a one-line hand-off to
the service (journeys/engagement.py), which finds the delivery only through our signed
Message-ID or signed metadata, or the ESP's own message id. An exception there becomes a 5xx and the
ESP retries: only a database error is let through. Inbound-mail endpoints are not served: nothing here
reads inbound mail.
"""

import logging

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.utils import get_request_basic_auth
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from .engagement import esp_event_record

logger = logging.getLogger(__name__)


def on_tracking(sender, event, esp_name, **kwargs) -> None:
    esp_event_record(esp_name=esp_name, event=event)


class UnreadableWebhook(Exception):
    """A verified post whose body anymail could not turn into events."""


class _FailClosed:
    """Mixed in before an anymail view: every failure to verify is a validation failure (403), every
    failure to parse an UnreadableWebhook (400), never an unhandled error."""

    def run_validators(self, request):
        try:
            super().run_validators(request)
        except AnymailWebhookValidationFailure:
            raise
        except ImproperlyConfigured as exc:
            raise AnymailWebhookValidationFailure(f"this ESP's webhook is not configured here: {exc}") from exc
        except Exception as exc:  # a body the validator could not even read cannot be verified
            raise AnymailWebhookValidationFailure(f"the post could not be verified: {exc.__class__.__name__}") from exc

    def parse_events(self, request):
        try:
            return list(super().parse_events(request))
        except Exception as exc:
            raise UnreadableWebhook(f"{exc.__class__.__name__}: {exc}"[:300]) from exc


def _allowed_secrets() -> list[str]:
    secret = (getattr(settings, "ANYMAIL", None) or {}).get("WEBHOOK_SECRET") or []
    return [secret] if isinstance(secret, str) else [s for s in secret if s]


def _refusal(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"code": {401: "unauthenticated", 403: "forbidden", 400: "bad_request"}[status],
                             "message": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="ESP tracking webhook"'
    return response


def _guarded(view_class: type):
    esp_name = view_class.esp_name
    checked = type(f"FailClosed{view_class.__name__}", (_FailClosed, view_class), {})
    inner = checked.as_view()

    @csrf_exempt
    def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            # HEAD (and Unisender Go's GET) is how ESPs check the URL exists; it reads and writes nothing.
            if request.method not in {m.upper() for m in checked.http_method_names}:
                return HttpResponse(status=405)
            return HttpResponse()
        allowed = _allowed_secrets()
        if not allowed:
            logger.error("refused a %s tracking webhook: no ANYMAIL WEBHOOK_SECRET is configured", esp_name)
            return _refusal(403, "Tracking webhooks are not configured on this server.")
        given = get_request_basic_auth(request)
        if given is None or not any(constant_time_compare(given, secret) for secret in allowed):
            return _refusal(401, f"{esp_name} tracking webhook: basic auth is missing or wrong. Put the "
                                 "ANYMAIL_WEBHOOK_SECRET credentials in the webhook URL (https://user:pass@host/…).")
        try:
            return inner(request, *args, **kwargs)
        except AnymailWebhookValidationFailure as exc:
            logger.warning("refused a %s tracking webhook: %s", esp_name, exc)
            return _refusal(403, f"{esp_name} tracking webhook could not be verified: {exc}")
        except ImproperlyConfigured as exc:  # the view could not even be set up (e.g. no signing key)
            logger.error("refused a %s tracking webhook: %s", esp_name, exc)
            return _refusal(403, f"The {esp_name} tracking webhook is not configured on this server.")
        except UnreadableWebhook as exc:
            logger.warning("refused a %s tracking webhook: %s", esp_name, exc)
            return _refusal(400, f"{esp_name} tracking webhook: the body is not a {esp_name} event ({exc}).")

    view.view_class = view_class
    return view


def _tracking_patterns() -> list[URLPattern]:
    patterns = []
    for pattern in anymail_urls.urlpatterns:
        view_class = getattr(pattern.callback, "view_class", None)
        if view_class is None or "inbound" in (pattern.name or ""):
            continue
        guarded = _guarded(view_class)
        patterns.append(URLPattern(pattern.pattern, guarded, pattern.default_args, pattern.name))
    return patterns


app_name = "anymail"
urlpatterns = _tracking_patterns()
