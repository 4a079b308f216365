"""REST API v1 for journeys as code: list, import (create or update by name), export.

Every query starts from `request.tenant`; another store's journey is a 404 with the same
body as a missing one.
"""

import datetime as dt
from typing import Any

from django.db.models import Count
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydantic import BaseModel, Field
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle.api.common import ERRORS, IDEMPOTENCY_HEADER, dump, parse
from lifecycle.api.idempotency import idempotent
from lifecycle.api.outputs import ErrorOut
from lifecycle.errors import NotFound, ServiceError
from lifecycle.numbers import BIGINT_MAX, whole_number

from .definition import MAX_STEPS, JourneyIn, StepIn
from .io import journey_export, journey_import
from .models import Enrollment, Journey

# Journeys per page: a store has tens of them, so one page is nearly always all of them.
PAGE_SIZE = 100

IMPORT_ERRORS = {
    **ERRORS,
    409: OpenApiResponse(ErrorOut, description="`journeys.has_active_enrollments`: customers are in the journey and the "
                                     "import changes more than content; `journeys.template_name_taken`; "
                                     "`journeys.step_has_history`; or an Idempotency-Key still in flight."),
}


class EnrollmentCountsOut(BaseModel):
    active: int = 0
    completed: int = 0
    exited: int = 0
    holdout: int = 0
    rejected: int = 0


class JourneySummaryOut(BaseModel):
    id: int
    name: str
    status: str = Field(description="draft, active, paused or archived")
    trigger: str
    library_key: str = Field(description="The built-in library journey it was installed from, or empty.")
    steps: int
    counts: EnrollmentCountsOut = Field(description="Enrollments by state, over the journey's lifetime.")
    updated_at: dt.datetime


class JourneyListOut(BaseModel):
    results: list[JourneySummaryOut]
    next: str | None = Field(description="The next page's URL, or null on the last page.")


class JourneyOut(JourneyIn):
    """What GET /journeys/{id} exports: the import JSON, except that a journey still being built in the
    workspace may have no steps yet (importing one needs at least one)."""

    steps: list[StepIn] = Field(max_length=MAX_STEPS)


class JourneyImportOut(BaseModel):
    id: int
    created: bool
    journey: JourneyOut = Field(description="The journey as stored: the same JSON GET /journeys/{id} returns.")


def _journey_or_404(tenant, journey_id: str) -> Journey:
    pk = whole_number(journey_id, minimum=1)
    journey = Journey.objects.for_tenant(tenant).filter(pk=pk).first() if pk is not None else None
    if journey is None:
        raise NotFound("journeys.not_found", f"no journey with id {journey_id!r}")
    return journey


def _summaries(tenant, after: int, limit: int) -> list[dict[str, Any]]:
    journeys = list(Journey.objects.for_tenant(tenant).filter(pk__gt=after).order_by("pk")
                    .annotate(step_count=Count("steps"))[:limit])
    counts: dict[int, dict[str, int]] = {journey.pk: {} for journey in journeys}
    rows = (Enrollment.objects.for_tenant(tenant).filter(journey_id__in=counts)
            .values("journey_id", "state").annotate(n=Count("pk")).order_by())
    for row in rows:
        counts[row["journey_id"]][row["state"]] = row["n"]
    return [{"id": j.pk, "name": j.name, "status": j.status, "trigger": j.trigger, "library_key": j.library_key,
             "steps": j.step_count, "counts": counts[j.pk], "updated_at": j.updated_at.astimezone(dt.UTC)}
            for j in journeys]


class JourneysView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("after", {"type": "integer", "minimum": 0, "maximum": BIGINT_MAX}, required=False,
                                     description="Return journeys with an id above this (from `next`).")],
        responses={200: JourneyListOut, **ERRORS}, summary="List journeys", operation_id="journeys_list",
    )
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("after", "0")
        after = whole_number(raw)
        if after is None:
            raise ServiceError("journeys.bad_cursor", "after must be a journey id from `next`",
                               {"after": ["must be a whole number"]})
        rows = _summaries(request.tenant, after, PAGE_SIZE + 1)
        page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
        nxt = request.build_absolute_uri(f"{request.path}?after={page[-1]['id']}") if more else None
        return dump(JourneyListOut(results=[JourneySummaryOut(**row) for row in page], next=nxt))

    @extend_schema(
        request=JourneyIn, parameters=[IDEMPOTENCY_HEADER],
        responses={201: JourneyImportOut, 200: JourneyImportOut, **IMPORT_ERRORS},
        summary="Import a journey (create or update by name)",
        description="The journey, its steps and their email templates, inline — the JSON that "
        "GET /journeys/{id} exports. Upserts by `name`: 201 when created (as `draft` unless `status` "
        "says otherwise), 200 when updated or unchanged. While customers are in the journey only "
        "content may change (description, status, step names, templates); anything else is a 409 "
        "naming each change.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = parse(JourneyIn, request)
        journey, created = journey_import(tenant=request.tenant, data=data)
        out = {"id": journey.pk, "created": created, "journey": journey_export(journey)}
        return Response(out, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class JourneyDetailView(APIView):
    @extend_schema(responses={200: JourneyOut, **ERRORS}, summary="Export a journey",
                   description="The journey as import JSON: POST it to /journeys (here or in another store) "
                   "to create or update it.")
    def get(self, request: Request, journey_id: str) -> Response:
        return Response(journey_export(_journey_or_404(request.tenant, journey_id)))
