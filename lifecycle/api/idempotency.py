"""`Idempotency-Key` as Stripe and draft-ietf-httpapi-idempotency-key-header define it.

- First request with a key: runs, and its response (status, bytes, content type) is kept.
- Same key, same request: the kept response, byte for byte, with `Idempotent-Replayed: true`.
- Same key, different request: 422. Same key while the first is still running: 409.
- Kept IDEMPOTENCY_TTL_HOURS (24 h by default); a 5xx is not kept, so the client may retry.
"""

import datetime as dt
import functools

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from rest_framework.renderers import JSONRenderer

from .. import clock
from ..idempotency import request_fingerprint
from ..middleware import json_error
from ..models import IdempotencyRecord

MAX_KEY_LENGTH = 255
# A request still "in flight" after this long died with its worker; a retry may take it over.
IN_FLIGHT_TIMEOUT = dt.timedelta(seconds=60)


def render(response) -> HttpResponse:
    """Turn a DRF Response into final bytes, so the stored copy is exactly what was sent."""
    if not hasattr(response, "data"):
        return response
    content = JSONRenderer().render(response.data) if response.data is not None else b""
    rendered = HttpResponse(content, status=response.status_code, content_type="application/json")
    for header, value in response.items():
        if header.lower() != "content-type":
            rendered[header] = value
    return rendered


def idempotent(handler):
    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return handler(view, request, *args, **kwargs)
        if not key or len(key) > MAX_KEY_LENGTH:
            return json_error(400, "idempotency.bad_key", f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.")
        tenant = request.tenant
        fingerprint = request_fingerprint(request.method, request.path, request._request.body)
        records = IdempotencyRecord.objects.for_tenant(tenant)
        claimed = _claim(records, tenant, key, fingerprint)
        if isinstance(claimed, HttpResponse):
            return claimed
        try:
            try:
                response = handler(view, request, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - turned into the API's error response below
                response = view.handle_exception(exc)
            final = render(response)
        except BaseException:
            records.filter(pk=claimed.pk).delete()
            raise
        if final.status_code >= 500:
            records.filter(pk=claimed.pk).delete()
        else:
            records.filter(pk=claimed.pk).update(
                state=IdempotencyRecord.State.DONE, response_status=final.status_code,
                response_body=final.content, response_content_type=final["Content-Type"],
            )
        return final

    return wrapper


def _claim(records, tenant, key: str, fingerprint: str):
    now = clock.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                return records.create(tenant=tenant, key=key, fingerprint=fingerprint, created_at=now)
        except IntegrityError:
            pass
        existing = records.filter(key=key).first()
        if existing is None:
            continue
        if now - existing.created_at > dt.timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS):
            records.filter(pk=existing.pk, created_at=existing.created_at).delete()
            continue
        if existing.fingerprint != fingerprint:
            return json_error(422, "idempotency.key_reused",
                              "This Idempotency-Key was already used with a different request. Use a new key.")
        if existing.state == IdempotencyRecord.State.IN_FLIGHT:
            if now - existing.created_at > IN_FLIGHT_TIMEOUT and records.filter(
                pk=existing.pk, state=IdempotencyRecord.State.IN_FLIGHT, created_at=existing.created_at
            ).update(created_at=now):
                existing.created_at = now
                return existing
            return json_error(409, "idempotency.in_flight",
                              "A request with this Idempotency-Key is still being processed; retry shortly.",
                              {"Retry-After": "1"})
        replay = HttpResponse(bytes(existing.response_body), status=existing.response_status,
                              content_type=existing.response_content_type)
        replay["Idempotent-Replayed"] = "true"
        return replay
    return json_error(409, "idempotency.in_flight", "This Idempotency-Key is busy; retry shortly.", {"Retry-After": "1"})
