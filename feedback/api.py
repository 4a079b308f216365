"""REST API v1 for feedback: a product's approved reviews (storefront), and the metrics.

Every query starts from `request.tenant`; another store's product is a 404 with the same
body as a missing one.
"""

import datetime as dt

from drf_spectacular.utils import OpenApiParameter, extend_schema
from pydantic import BaseModel, Field
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle.api.common import ERRORS, PERIOD_PARAMETERS, dump, query_day
from lifecycle.errors import ServiceError
from lifecycle.numbers import whole_number

from .models import Review
from .selectors import (
    REVIEW_ORDERINGS,
    feedback_metrics,
    product_by_external_id,
    product_review_summary,
    product_reviews,
)

# Reviews per page unless ?page_size= says otherwise (at most MAX_PAGE_SIZE).
PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 10**6


class ReviewOut(BaseModel):
    id: int
    rating: int = Field(description="1 to 5 stars")
    title: str
    body: str
    author: str = Field(description="The reviewer's first name and initial.")
    verified_purchase: bool = Field(description="The product is on one of the reviewer's paid orders.")
    created_at: dt.datetime
    store_reply: str
    replied_at: dt.datetime | None


class ReviewListOut(BaseModel):
    product_external_id: str
    count: int = Field(description="Approved reviews of this product.")
    average: float | None = Field(description="Average rating of the approved reviews, or null with none.")
    results: list[ReviewOut]
    next: str | None = Field(description="The next page's URL, or null on the last page.")


class MetricsOut(BaseModel):
    requests: int = Field(description="Survey requests sent (asked) in the period.")
    responses: int = Field(description="Of those, how many have a final answer.")
    response_rate: float | None = Field(description="responses / requests, in percent.")
    nps: float | None = Field(description="% promoters (9–10) − % detractors (0–6), from −100 to 100.")
    nps_responses: int
    promoters: int
    passives: int
    detractors: int
    csat_percent: float | None = Field(description="Share of CSAT answers of 4 or 5, in percent.")
    csat_responses: int
    ces_average: float | None = Field(description="Average CES (1 = very little effort, 7 = a great deal).")
    ces_responses: int
    review_average: float | None
    review_responses: int


class JourneyMetricsOut(MetricsOut):
    journey_id: int


class ProductMetricsOut(MetricsOut):
    product_external_id: str


class WeekMetricsOut(MetricsOut):
    week: dt.date = Field(description="The Monday the week starts on, in the store's time zone.")


class FeedbackMetricsOut(BaseModel):
    overall: MetricsOut
    by_journey: list[JourneyMetricsOut]
    by_product: list[ProductMetricsOut]
    by_week: list[WeekMetricsOut]


def _positive_int(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name, str(default))
    value = whole_number(raw, minimum=1, maximum=maximum)
    if value is None:
        raise ServiceError("reviews.bad_paging", f"{name} must be a whole number from 1 to {maximum}",
                           {name: [f"must be from 1 to {maximum}"]})
    return value


class ProductReviewsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("sort", str, enum=list(REVIEW_ORDERINGS), required=False,
                             description="newest (default) or best (highest rating first)."),
            OpenApiParameter("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, required=False,
                             description="1-based page number (from `next`)."),
            OpenApiParameter("page_size", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}, required=False,
                             description=f"At most {MAX_PAGE_SIZE}."),
        ],
        responses={200: ReviewListOut, **ERRORS}, summary="A product's approved reviews",
        description="For the storefront: approved reviews only, with their count and average rating.",
    )
    def get(self, request: Request, external_id: str) -> Response:
        product = product_by_external_id(tenant=request.tenant, external_id=external_id)
        sort = request.query_params.get("sort", "newest")
        if sort not in REVIEW_ORDERINGS:
            raise ServiceError("reviews.bad_sort", "sort must be newest or best", {"sort": ["must be newest or best"]})
        page = _positive_int(request, "page", 1, MAX_PAGE)
        size = _positive_int(request, "page_size", PAGE_SIZE, MAX_PAGE_SIZE)
        start = (page - 1) * size
        rows: list[Review] = list(product_reviews(tenant=request.tenant, product=product, sort=sort)[start:start + size + 1])
        more = len(rows) > size
        query = request.query_params.copy()
        query["page"] = str(page + 1)
        out = ReviewListOut(
            product_external_id=product.external_id, **product_review_summary(tenant=request.tenant, product=product),
            results=[ReviewOut(id=r.pk, rating=r.rating, title=r.title, body=r.body, author=r.author_name,
                               verified_purchase=r.verified_purchase, created_at=r.created_at.astimezone(dt.UTC),
                               store_reply=r.store_reply,
                               replied_at=r.replied_at.astimezone(dt.UTC) if r.replied_at else None)
                     for r in rows[:size]],
            next=request.build_absolute_uri(f"{request.path}?{query.urlencode()}") if more else None,
        )
        return dump(out)


class FeedbackMetricsView(APIView):
    @extend_schema(
        parameters=[
            *PERIOD_PARAMETERS,
            OpenApiParameter("survey", str, required=False, description="Only this survey (its key)."),
        ],
        responses={200: FeedbackMetricsOut, **ERRORS}, summary="Feedback metrics",
        description="NPS, CSAT %, CES average and response rate: overall, per journey, per product and by "
        "week. Scores count final answers by when they were given; the response rate counts requests by "
        "when they were sent.",
    )
    def get(self, request: Request) -> Response:
        data = feedback_metrics(tenant=request.tenant, since=query_day(request, "since", code="feedback.bad_date"), until=query_day(request, "until", code="feedback.bad_date"),
                                survey_key=request.query_params.get("survey") or None)
        return dump(FeedbackMetricsOut.model_validate(data))
