"""Edges that must answer before, or instead of, a view."""

import json
import logging

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse

logger = logging.getLogger(__name__)

BULK_PATH_SUFFIXES = ("/bulk", "/bulk/")


def json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps({"code": code, "message": message, "fields": {}}), status=status, content_type="application/json"
    )
    for key, value in (headers or {}).items():
        response[key] = value
    return response


class BodySizeLimitMiddleware:
    """413 for an oversized body, decided from Content-Length before anything reads it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(("/api/", "/webhooks/")):
            limit = settings.API_BULK_MAX_BODY_BYTES if request.path.endswith(BULK_PATH_SUFFIXES) else settings.API_MAX_BODY_BYTES
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return json_error(400, "request.bad_content_length", "The Content-Length header is not a number.")
            if length > limit:
                return json_error(413, "request.too_large", f"The request body is {length} bytes; the limit is {limit}.")
        return self.get_response(request)


# What a request meets while PostgreSQL or Redis (rate limits, repeated-order answers) is restarting or
# unreachable: the client should retry, nothing is wrong with its request.
UNAVAILABLE = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)


class DatabaseUnavailableMiddleware:
    """While the database or Redis is unreachable, say so with a 503 and Retry-After, never a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        except UNAVAILABLE as exc:
            return self._unavailable(exc)

    def process_exception(self, request, exception):
        if isinstance(exception, UNAVAILABLE):
            return self._unavailable(exception)
        return None

    @staticmethod
    def _unavailable(exc: Exception) -> HttpResponse:
        logger.warning("%s unavailable: %s", "Redis" if isinstance(exc, redis.RedisError) else "database", exc)
        return json_error(503, "service_unavailable", "The service is briefly unavailable; retry shortly.",
                          {"Retry-After": "5"})
