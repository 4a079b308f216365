"""One error shape for the whole API: {"code": "...", "message": "...", "fields": {...}}.

Codes are stable (clients may branch on them); messages tell a person what to change.
"""

from typing import Any

import pydantic
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from lifecycle.inputs import OUT_OF_RANGE

from ..errors import ServiceError

# Friendlier words for pydantic's error types.
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this request; check its spelling",
    "timezone_aware": "must include a UTC offset, such as 2024-05-01T12:00:00Z",
    "datetime_parsing": "must be an ISO 8601 date-time with a UTC offset, such as 2024-05-01T12:00:00Z",
    "datetime_from_date_parsing": "must be an ISO 8601 date-time with a UTC offset, such as 2024-05-01T12:00:00Z",
    "datetime_type": "must be an ISO 8601 date-time with a UTC offset, such as 2024-05-01T12:00:00Z",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "string_too_long": "must be at most {max_length} characters",
    "string_too_short": "must not be empty",
    "too_long": "must have at most {max_length} items",
    "too_short": "must have at least {min_length} item(s)",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "string_pattern_mismatch": "does not have the expected format",
    "literal_error": "must be one of {expected}",
}


def pydantic_fields(error: pydantic.ValidationError, prefix: str = "") -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"]) or "body"
        kind = item["type"]
        if kind in ("too_short", "string_too_short") and isinstance(item.get("input"), str):
            kind = "string_too_short"
        template = _MESSAGES.get(kind)
        if template:
            try:
                message = template.format(**(item.get("ctx") or {}))
            except (KeyError, IndexError):
                message = template
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
        fields.setdefault(prefix + loc, []).append(message)
    return fields


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "fields": fields or {}}


def _summary(fields: dict[str, list[str]]) -> str:
    first_field, messages = next(iter(fields.items()))
    more = len(fields) - 1
    return f"{first_field} {messages[0]}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def exception_handler(exc: Exception, context: dict) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, pydantic.ValidationError):
        fields = pydantic_fields(exc)
        if all(item["type"] == OUT_OF_RANGE for item in exc.errors(include_url=False)):
            # Well-formed, but a date-time outside the window we accept (0001-01-01, 9999-12-31 …).
            return Response(error_body("timestamp_out_of_range", _summary(fields), fields), status=422)
        return Response(error_body("validation_failed", _summary(fields), fields), status=400)
    if isinstance(exc, ServiceError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("request.too_large", "The request body is too large."), status=413)
    if isinstance(exc, ValueError) and "NUL (0x00)" in str(exc):
        # psycopg2 refuses U+0000 in a query (a path or query parameter here; bodies are checked when parsed).
        return Response(error_body("request.nul_character", "The request must not contain a NUL (\\u0000) character."),
                        status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    if isinstance(exc, exceptions.Throttled):
        headers["Retry-After"] = str(int(exc.wait or 1))
        body = error_body("rate_limited", f"Too many requests for this API key; retry in {int(exc.wait or 1)} s.")
        if getattr(exc.detail, "code", "throttled") != "throttled":  # a throttle with its own code and words
            body = error_body(exc.detail.code, str(exc.detail))
    elif isinstance(exc, exceptions.ParseError):
        # The parser names what was wrong (request.too_deep, request.number_too_long, request.bad_unicode).
        code = exc.get_codes()
        body = error_body(code if isinstance(code, str) and code != "parse_error" else "request.malformed_json",
                          str(exc.detail))
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        body = error_body("auth.invalid_key" if isinstance(exc, exceptions.AuthenticationFailed) else "auth.missing_key",
                          str(exc.detail))
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        exc.status_code = status.HTTP_401_UNAUTHORIZED
    elif isinstance(exc, exceptions.NotFound):
        body = error_body("not_found", "Not found.")
    elif isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"body": exc.detail}
        fields = {key: [str(m) for m in (value if isinstance(value, list) else [value])] for key, value in detail.items()}
        body = error_body("validation_failed", _summary(fields), fields)
    else:
        body = error_body(exc.default_code if isinstance(exc.default_code, str) else "error", str(exc.detail))
    return Response(body, status=exc.status_code, headers=headers)
