"""What every app's API views share: parse a body into its input model, dump a response, the documented
error answers and the Idempotency-Key header."""

import datetime as dt
from typing import Any

import pydantic
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from ..errors import ServiceError
from ..numbers import calendar_date
from .idempotency import MAX_KEY_LENGTH
from .outputs import ErrorOut

ERRORS = {
    400: OpenApiResponse(ErrorOut, description="Invalid input: `fields` names each problem."),
    401: OpenApiResponse(ErrorOut, description="Missing, invalid or revoked API key."),
    404: OpenApiResponse(ErrorOut, description="No such object for this API key's store."),
    409: OpenApiResponse(ErrorOut, description="A request with this Idempotency-Key is still in flight."),
    413: OpenApiResponse(ErrorOut, description="Body too large."),
    414: OpenApiResponse(description="The URL is too long (the server in front of the app refuses request lines "
                                     "over 4094 bytes); path and query values are far shorter."),
    415: OpenApiResponse(ErrorOut, description="The body is not JSON (send Content-Type: application/json)."),
    422: OpenApiResponse(ErrorOut, description="This Idempotency-Key was used with a different request "
                         "(`idempotency.key_reused`), or a date-time is outside 1970-01-01 .. now + 2 days "
                         "(`timestamp_out_of_range`)."),
    429: OpenApiResponse(ErrorOut, description="Over the per-key rate limit, or too many wrong API keys from this "
                         "address (`auth.too_many_failures`); see Retry-After."),
}


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH}, OpenApiParameter.HEADER,
    required=False, description=f"Any unique string of 1 to {MAX_KEY_LENGTH} characters (anything else is a 400). "
    "A retry with the same key returns the first response.",
)


def parse(model: type[pydantic.BaseModel], request: Request) -> Any:
    body = request.data
    if not isinstance(body, dict):
        raise pydantic.ValidationError.from_exception_data(
            model.__name__, [{"type": "model_type", "loc": (), "input": body, "ctx": {"class_name": model.__name__}}]
        )
    return model.model_validate(body)


def dump(model: pydantic.BaseModel, code: int = status.HTTP_200_OK) -> Response:
    return Response(model.model_dump(mode="json"), status=code)


# A metrics endpoint's period: whole days in UTC.
PERIOD_PARAMETERS = [
    OpenApiParameter("since", dt.date, required=False, description="From this day (UTC), inclusive; omit for no lower bound."),
    OpenApiParameter("until", dt.date, required=False, description="Up to this day (UTC), exclusive; omit for no upper bound."),
]


def query_day(request: Request, name: str, *, code: str) -> dt.datetime | None:
    """A `?since=`/`?until=` day as midnight UTC; absent is None, anything else (an empty value too,
    as the schema says) a 400 with `code`."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    day = calendar_date(raw)
    if day is None:
        raise ServiceError(code, f"{name} must be a date such as 2026-01-31", {name: ["must be a date such as 2026-01-31"]})
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
