"""GET /api/v1/customers/{external_id}/journeys: what happened to a customer in each journey, and why.

Parse, call the selector, answer with one output model (as lifecycle/api/views.py does).
Another store's customer or journey is a 404 with the same body as a missing one.
"""



from drf_spectacular.utils import OpenApiParameter, extend_schema
from pydantic import BaseModel, Field
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle.api.common import ERRORS, dump
from lifecycle.errors import NotFound, ServiceError
from lifecycle.models import Customer
from lifecycle.numbers import BIGINT_MAX, whole_number

from .models import Journey
from .selectors import JourneyExplanation, customer_journeys_explain, customer_time_zone


class CustomerJourneysOut(BaseModel):
    customer_external_id: str
    time_zone: str = Field(description="The zone the `summary` times are written in: the customer's, else the "
                                       "store's. Every other time is UTC.")
    journeys: list[JourneyExplanation]


class CustomerJourneysView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("journey", {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX}, required=False,
                                     description="Only this journey (its id).")],
        responses={200: CustomerJourneysOut, **{code: ERRORS[code] for code in (400, 401, 404, 414, 429)}},
        summary="Explain a customer's journeys",
        description="For every active or paused journey, and any journey the customer has a decision in: "
        "enrolled or not and why (filter, entry policy, holdout, exit), each step sent, skipped or deferred "
        "with its reason and history, and what is due next. Each journey has a one-line `summary`.",
    )
    def get(self, request: Request, external_id: str) -> Response:
        tenant = request.tenant
        customer = Customer.objects.for_tenant(tenant).filter(external_id=external_id).first()
        if customer is None:
            raise NotFound("customers.not_found", f"no customer with external_id {external_id!r}")
        journey = None
        raw = request.query_params.get("journey")
        if raw not in (None, ""):
            pk = whole_number(raw, minimum=1)
            if pk is None:
                raise ServiceError("validation_failed", "journey must be a whole number from 1",
                                   {"journey": ["must be a whole number from 1"]})
            journey = Journey.objects.for_tenant(tenant).filter(pk=pk).first()
            if journey is None:
                raise NotFound("journeys.not_found", f"no journey with id {raw}")
        explained = customer_journeys_explain(tenant=tenant, customer=customer, journey=journey)
        zone = customer_time_zone(tenant=tenant, customer=customer)
        return dump(CustomerJourneysOut(customer_external_id=external_id, time_zone=zone.key, journeys=explained))
