"""The journey pages of the marketer's workspace."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path

from lifecycle.models import Tenant
from lifecycle.workspace.access import workspace_view

from .models import Journey


@workspace_view()
def journey_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    journeys = Journey.objects.for_tenant(tenant).order_by("-priority", "name")
    return render(request, "workspace/journeys/list.html", {"journeys": journeys})


@workspace_view()
def journey_detail(request: HttpRequest, tenant: Tenant, journey_id: int) -> HttpResponse:
    journey = get_object_or_404(Journey.objects.for_tenant(tenant), pk=journey_id)
    return render(request, "workspace/journeys/detail.html", {"journey": journey})


urlpatterns = [
    path("journeys/", journey_list, name="journeys"),
    path("journeys/<int:journey_id>/", journey_detail, name="journey"),
]
