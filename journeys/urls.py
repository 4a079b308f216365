"""Journeys' routes: its part of the REST API (mounted at /api/v1/ by config/urls.py) and the ESP
tracking webhooks (e.g. /anymail/postmark/tracking/: anymail's, behind journeys.tracking's gate)."""

from django.urls import include, path, re_path

from lifecycle.urls import S

from .api import JourneyDetailView, JourneysView
from .api_explain import CustomerJourneysView
from .api_personal_data import CustomerExportView

api_urlpatterns = [
    re_path(rf"^customers/(?P<external_id>[^/]+)/journeys{S}$", CustomerJourneysView.as_view(),
            name="customer-journeys"),
    re_path(rf"^customers/(?P<external_id>[^/]+)/export{S}$", CustomerExportView.as_view(), name="customer-export"),
    re_path(rf"^journeys{S}$", JourneysView.as_view(), name="journeys"),
    re_path(rf"^journeys/(?P<journey_id>[^/]+){S}$", JourneyDetailView.as_view(), name="journey-detail"),
]

urlpatterns = [
    path("anymail/", include("journeys.tracking")),
]
