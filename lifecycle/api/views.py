"""REST API v1: parse input, call one service, answer with one output model.

Every view starts from `request.tenant` (set by the API key); another tenant's object
is a 404 with the same body as a missing one."""

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pydantic
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle.inputs import (
    BulkOrdersIn,
    CancellationIn,
    DeliveryIn,
    EventIn,
    FulfillmentIn,
    OrderIn,
    RefundIn,
)

from ..bulk import orders_bulk_ingest
from ..customers import customer_erase, event_record
from ..errors import NotFound, ServiceError
from ..models import Customer, Order, Refund
from ..orders import order_ingest, order_mark
from ..refunds import refund_record
from . import replays
from .common import ERRORS, IDEMPOTENCY_HEADER, dump, parse
from .idempotency import idempotent
from .outputs import BulkOut, CustomerListOut, CustomerOut, EventOut, OrderOut, PingOut


def order_response(tenant, external_id: str, code: int = status.HTTP_200_OK) -> Response:
    order = (
        Order.objects.for_tenant(tenant).select_related("customer").prefetch_related("lines")
        .filter(external_id=external_id).first()
    )
    if order is None:
        raise NotFound("orders.not_found", f"no order with external_id {external_id!r}")
    return order_answer(tenant, order, list(order.lines.all()), code)


def order_answer(tenant, order: Order, lines: list, code: int = status.HTTP_200_OK) -> Response:
    """Answer with an order already in hand (and its lines), not read back from the database."""
    # refunded_total is the sum of the order's refunds (refund_record keeps it so in the refund's
    # transaction), so an order with nothing refunded has no refunds to read: one SELECT fewer
    # for nearly every answer.
    refunds = list(Refund.objects.for_tenant(tenant).filter(order=order).order_by("pk")) if order.refunded_total else []
    return dump(OrderOut.of(order, lines, refunds), code)


class PingView(APIView):
    @extend_schema(request=None, responses={200: PingOut, **ERRORS}, summary="Check an API key")
    def post(self, request: Request) -> Response:
        return dump(PingOut(ok=True, tenant=request.tenant.slug))


class OrdersView(APIView):
    def redis_reads(self, request: Request) -> list[str]:
        """Read by the rate limit in its Redis round trip (lifecycle/throttling.py): the answer kept
        for this body, when `post` will look for one."""
        if "Idempotency-Key" in request.headers:
            return []
        return [replays.answer_key(request.tenant.pk, request._request.body)]

    @extend_schema(
        request=OrderIn, parameters=[IDEMPOTENCY_HEADER],
        responses={201: OrderOut, 200: OrderOut, **ERRORS},
        summary="Create or update an order",
        description="Upserts by `external_id`: 201 when created, 200 when updated or unchanged. "
        "The customer is matched by external_id, then email. Status only moves forward.",
    )
    @idempotent
    def post(self, request: Request) -> Response | HttpResponse:
        # The same bytes again, with the order as it was when they were answered: the same answer.
        body = request._request.body if "Idempotency-Key" not in request.headers else None
        read = getattr(request, "redis_read", None)
        if body is not None and (answer := replays.recall(request.tenant.pk, body, read)) is not None:
            return HttpResponse(answer, content_type="application/json")
        data = parse(OrderIn, request)
        result = order_ingest(tenant=request.tenant, data=data)
        response = order_answer(request.tenant, result.order, list(result.lines),
                                status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)
        if body is not None and data.customer.external_id:
            replays.keep(request.tenant.pk, body, result.order, JSONRenderer().render(response.data))
        return response


class OrdersBulkView(APIView):
    @extend_schema(
        request=BulkOrdersIn, parameters=[IDEMPOTENCY_HEADER], responses={200: BulkOut, **ERRORS},
        summary="Import or relay up to 1,000 orders",
        description="Each order is validated and written on its own: one bad order does not stop the others, "
        "and `results` says what happened to each. By default the orders are history: their events go on "
        "customers' timelines but start no journeys. With `\"live\": true` they are new orders, and their events "
        "start journeys as single POSTs do.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        body = parse(BulkOrdersIn, request)
        return dump(orders_bulk_ingest(tenant=request.tenant, items=body.orders, backfill=not body.live))


class OrderDetailView(APIView):
    @extend_schema(responses={200: OrderOut, **ERRORS}, summary="Get an order")
    def get(self, request: Request, external_id: str) -> Response:
        return order_response(request.tenant, external_id)


class _OrderMilestoneView(APIView):
    milestone = ""
    input_model: type[pydantic.BaseModel] = FulfillmentIn
    field = ""

    def post(self, request: Request, external_id: str) -> Response:
        data = parse(self.input_model, request)
        order_mark(tenant=request.tenant, external_id=external_id, milestone=self.milestone,
                   at=getattr(data, self.field), reason=getattr(data, "reason", ""))
        return order_response(request.tenant, external_id)


class OrderFulfillmentView(_OrderMilestoneView):
    milestone, input_model, field = "fulfilled", FulfillmentIn, "fulfilled_at"

    @extend_schema(request=FulfillmentIn, parameters=[IDEMPOTENCY_HEADER], responses={200: OrderOut, **ERRORS},
                   summary="Mark an order fulfilled (shipped)")
    @idempotent
    def post(self, request: Request, external_id: str) -> Response:
        return super().post(request, external_id)


class OrderDeliveryView(_OrderMilestoneView):
    milestone, input_model, field = "delivered", DeliveryIn, "delivered_at"

    @extend_schema(request=DeliveryIn, parameters=[IDEMPOTENCY_HEADER], responses={200: OrderOut, **ERRORS},
                   summary="Mark an order delivered")
    @idempotent
    def post(self, request: Request, external_id: str) -> Response:
        return super().post(request, external_id)


class OrderCancellationView(_OrderMilestoneView):
    milestone, input_model, field = "cancelled", CancellationIn, "cancelled_at"

    @extend_schema(request=CancellationIn, parameters=[IDEMPOTENCY_HEADER], responses={200: OrderOut, **ERRORS},
                   summary="Cancel an order")
    @idempotent
    def post(self, request: Request, external_id: str) -> Response:
        return super().post(request, external_id)


class OrderRefundsView(APIView):
    @extend_schema(
        request=RefundIn, parameters=[IDEMPOTENCY_HEADER], responses={201: OrderOut, 200: OrderOut, **ERRORS},
        summary="Record a refund",
        description="Once per refund `external_id`: 201 when recorded, 200 when it already was. "
        "A refund may not exceed what is left to refund.",
    )
    @idempotent
    def post(self, request: Request, external_id: str) -> Response:
        data = parse(RefundIn, request)
        _, created = refund_record(tenant=request.tenant, order_external_id=external_id, data=data)
        return order_response(request.tenant, external_id, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _customer_or_404(tenant, external_id: str) -> Customer:
    customer = Customer.objects.for_tenant(tenant).filter(external_id=external_id).first()
    if customer is None:
        raise NotFound("customers.not_found", f"no customer with external_id {external_id!r}")
    return customer


class CustomerDetailView(APIView):
    @extend_schema(responses={200: CustomerOut, **ERRORS}, summary="Get a customer")
    def get(self, request: Request, external_id: str) -> Response:
        return dump(CustomerOut.of(_customer_or_404(request.tenant, external_id), request.tenant.currency))

    @extend_schema(
        responses={204: None, **ERRORS}, summary="Erase a customer (GDPR)",
        description="Anonymizes the customer's personal data at once; orders and aggregates stay, "
        "and nothing more is ever sent to them.",
    )
    def delete(self, request: Request, external_id: str) -> Response:
        customer_erase(tenant=request.tenant, external_id=external_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CustomerListView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("email", {"type": "string", "pattern": "@"}, required=True,
                                     description="The customer's email address (a value without @ is a 400).")],
        responses={200: CustomerListOut, **ERRORS}, summary="Find customers by email",
        operation_id="customers_find",
    )
    def get(self, request: Request) -> Response:
        email = (request.query_params.get("email") or "").strip().lower()
        if not email or "@" not in email:
            return Response(
                {"code": "customers.email_required", "message": "Pass ?email=<address> to find customers.",
                 "fields": {"email": ["is required"]}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        customers = Customer.objects.for_tenant(request.tenant).filter(email=email).order_by("pk")[:20]
        return dump(CustomerListOut(results=[CustomerOut.of(c, request.tenant.currency) for c in customers]))


def _json_numbers(value: Any, where: str) -> Any:
    """`events.data` as JSON can store it: the body's numbers are read as Decimal (for money), which
    json.dumps cannot write; a whole number stays an int, any other becomes a float (a number too
    large for one is a 400, not a 500)."""
    if isinstance(value, dict):
        return {key: _json_numbers(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_json_numbers(item, f"{where}.{index}") for index, item in enumerate(value)]
    if isinstance(value, Decimal):
        number = float(value)
        if not math.isfinite(number):
            raise ServiceError("validation_failed", f"{where} is too large a number",
                               {where: ["is too large a number"]})
        return int(value) if value == value.to_integral_value() and abs(value) < 2**63 else number
    return value


class EventsView(APIView):
    @extend_schema(
        request=EventIn, parameters=[IDEMPOTENCY_HEADER], responses={201: EventOut, 200: EventOut, **ERRORS},
        summary="Record a custom event",
        description="For what happens outside the store: support.contacted, support.resolved, "
        "product.registered, feature.used … Journeys can start or stop on these.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = parse(EventIn, request)
        data.data = _json_numbers(data.data, "data")
        event, created = event_record(tenant=request.tenant, data=data)
        out = EventOut(id=event.pk, type=event.type, occurred_at=event.occurred_at.astimezone(dt.UTC),
                       customer_external_id=event.customer.external_id if event.customer else None, created=created)
        return dump(out, status.HTTP_201_CREATED if created else status.HTTP_200_OK)
