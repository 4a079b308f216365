"""The store's home: what the journeys did."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from lifecycle.models import Customer, Order, Tenant

from .access import workspace_view


@workspace_view()
def home(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    context = {
        "customers": Customer.objects.for_tenant(tenant).count(),
        "orders": Order.objects.for_tenant(tenant).count(),
    }
    return render(request, "workspace/home.html", context)


urlpatterns = [
    path("", home, name="home"),
]
