"""Wiring: every app's routes, each from its own urls.py. The REST API at /api/v1/ is every app's
`api_urlpatterns`, in one namespace ("v1")."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from feedback import urls as feedback_urls
from journeys import urls as journeys_urls
from lifecycle import urls as lifecycle_urls
from loyalty import urls as loyalty_urls
from referrals import urls as referrals_urls

api_v1 = [
    *lifecycle_urls.api_urlpatterns,
    *journeys_urls.api_urlpatterns,
    *loyalty_urls.api_urlpatterns,
    *feedback_urls.api_urlpatterns,
    *referrals_urls.api_urlpatterns,
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="workspace:picker"), name="root"),
    path("app/", include("workspace.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # ReDoc served from our own static files (templates/api/redoc.html): the docs load offline.
    path("api/docs/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="api-docs"),
    path("f/", include(feedback_urls.urlpatterns)),
    path("", include(lifecycle_urls.urlpatterns)),
    path("", include(journeys_urls.urlpatterns)),
    path("", include(loyalty_urls.urlpatterns)),
    path("", include(referrals_urls.urlpatterns)),
]
