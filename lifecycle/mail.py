"""The embedded profile's email backend: every message lands in the local outbox
(Admin → Outbox messages) instead of leaving the machine."""

from django.core.mail.backends.base import BaseEmailBackend

from .models import OutboxMessage


class OutboxBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        sent = 0
        for message in email_messages:
            html = ""
            for content, mimetype in getattr(message, "alternatives", []):
                if mimetype == "text/html":
                    html = content
            metadata = getattr(message, "metadata", None) or {}
            OutboxMessage.objects.create(
                tenant_id=metadata.get("tenant_id"),
                from_email=message.from_email,
                to=", ".join(message.to),
                subject=message.subject,
                text_body=message.body,
                html_body=html,
                headers={key: str(value) for key, value in (message.extra_headers or {}).items()},
                message_id=str((message.extra_headers or {}).get("Message-ID", "")),
            )
            sent += 1
        return sent
