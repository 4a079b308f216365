"""Customers and orders: find one, then see everything that happened to them."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path

from lifecycle.models import Customer, Tenant

from .access import workspace_view

PAGE_SIZE = 50


@workspace_view()
def customer_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    rows = Customer.objects.for_tenant(tenant).order_by("-id")[:PAGE_SIZE]
    return render(request, "workspace/customers/list.html", {"customers": rows})


@workspace_view()
def customer_detail(request: HttpRequest, tenant: Tenant, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(Customer.objects.for_tenant(tenant), pk=customer_id)
    return render(request, "workspace/customers/detail.html", {"customer": customer})


urlpatterns = [
    path("customers/", customer_list, name="customers"),
    path("customers/<int:customer_id>/", customer_detail, name="customer"),
]
