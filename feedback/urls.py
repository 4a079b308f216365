"""Feedback's routes: its part of the REST API (mounted at /api/v1/ by config/urls.py) and the survey and
review links, included at /f/ (tokens are signing.dumps() output: no "/" in them)."""

from django.urls import path, re_path

from lifecycle.urls import S

from . import pages
from .api import FeedbackMetricsView, ProductReviewsView

api_urlpatterns = [
    re_path(rf"^products/(?P<external_id>[^/]+)/reviews{S}$", ProductReviewsView.as_view(), name="product-reviews"),
    re_path(rf"^feedback/metrics{S}$", FeedbackMetricsView.as_view(), name="feedback-metrics"),
]

urlpatterns = [
    path("<str:token>", pages.answer, name="feedback-answer"),
    path("<str:token>/<int:score>", pages.answer, name="feedback-score"),
    path("<str:token>/review/<int:product_id>", pages.review, name="feedback-review"),
]
