"""The anymail `tracking` signal receiver: the one signal this project uses.

anymail verifies the webhook (basic auth, or the ESP's signature) and normalizes the ESP's
payload into an `AnymailTrackingEvent`; the signal is its only way to hand it over. The
receiver is a one-line hand-off to the service, so the flow stays readable there.
An exception here becomes a 5xx and the ESP retries: only a database error is let through.
"""

from .services_tracking import esp_event_record


def on_tracking(sender, event, esp_name, **kwargs) -> None:
    esp_event_record(esp_name=esp_name, event=event)
