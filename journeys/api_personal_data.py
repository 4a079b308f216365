"""GET /api/v1/customers/{external_id}/export: one customer's data as JSON (GDPR), for the store's own
data-subject requests. Another store's customer is a 404 with the same body as a missing one; each export is
a line in the store's audit log naming the API key that took it."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle.api.common import ERRORS
from lifecycle.errors import NotFound
from lifecycle.models import Customer

from .personal_data import customer_export_record, customer_personal_data


class CustomerExportView(APIView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, **{code: ERRORS[code] for code in (401, 404, 414, 429)}},
        summary="Export a customer's data (GDPR)",
        description="Everything the store holds about the customer: the customer row, orders and lines, the "
        "timeline, loyalty, referrals, survey answers, reviews, journeys and emails, each section a list of rows. "
        "Recorded in the store's audit log.",
    )
    def get(self, request: Request, external_id: str) -> Response:
        tenant = request.tenant
        customer = Customer.objects.for_tenant(tenant).filter(external_id=external_id).first()
        if customer is None:
            raise NotFound("customers.not_found", f"no customer with external_id {external_id!r}")
        data = customer_personal_data(tenant=tenant, customer=customer)
        customer_export_record(tenant=tenant, customer=customer, by=f"api key lc_{request.auth.prefix}")
        return Response(data)
