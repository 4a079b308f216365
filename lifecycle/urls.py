"""The core's routes: its part of the REST API (config/urls.py mounts every app's `api_urlpatterns` at
/api/v1/), the unsubscribe link and the preference page, and the storefront webhooks."""

from django.urls import path, re_path

from . import pages, webhooks
from .api import views as api

# Optional trailing slash: storefront code and platforms POST to exactly what they were
# given, and a 301 to the slashed URL would lose the body (WooCommerce even counts it
# as delivered).
S = "/?"

api_urlpatterns = [
    re_path(rf"^ping{S}$", api.PingView.as_view(), name="ping"),
    re_path(rf"^orders{S}$", api.OrdersView.as_view(), name="orders"),
    re_path(rf"^orders/bulk{S}$", api.OrdersBulkView.as_view(), name="orders-bulk"),
    re_path(rf"^orders/(?P<external_id>[^/]+){S}$", api.OrderDetailView.as_view(), name="order-detail"),
    re_path(rf"^orders/(?P<external_id>[^/]+)/fulfillment{S}$", api.OrderFulfillmentView.as_view(), name="order-fulfillment"),
    re_path(rf"^orders/(?P<external_id>[^/]+)/delivery{S}$", api.OrderDeliveryView.as_view(), name="order-delivery"),
    re_path(rf"^orders/(?P<external_id>[^/]+)/cancellation{S}$", api.OrderCancellationView.as_view(), name="order-cancellation"),
    re_path(rf"^orders/(?P<external_id>[^/]+)/refunds{S}$", api.OrderRefundsView.as_view(), name="order-refunds"),
    re_path(rf"^customers{S}$", api.CustomerListView.as_view(), name="customers"),
    re_path(rf"^customers/(?P<external_id>[^/]+){S}$", api.CustomerDetailView.as_view(), name="customer-detail"),
    re_path(rf"^events{S}$", api.EventsView.as_view(), name="events"),
]

urlpatterns = [
    path("u/<str:token>", pages.unsubscribe, name="unsubscribe"),
    path("u/<str:token>/preferences", pages.preferences, name="preferences"),
    re_path(rf"^webhooks/shopify{S}$", webhooks.shopify, name="webhook-shopify"),
    re_path(rf"^webhooks/woocommerce/(?P<public_id>[A-Za-z0-9_-]+){S}$", webhooks.woocommerce, name="webhook-woocommerce"),
]
