from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from feedback.api import FeedbackMetricsView, ProductReviewsView
from journeys.api import JourneyDetailView, JourneysView
from journeys.api_explain import CustomerJourneysView
from lifecycle import pages, webhooks
from lifecycle.api import views as api
from loyalty.api import CustomerLoyaltyView, CustomerRedemptionsView, RewardCodesView
from loyalty.pages import loyalty_page
from referrals import pages as referral_pages
from referrals.api import CustomerReferralView, ReferralCodeView, ReferralMetricsView

# Optional trailing slash: storefront code and platforms POST to exactly what they were
# given, and a 301 to the slashed URL would lose the body (WooCommerce even counts it
# as delivered).
S = "/?"

api_v1 = [
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
    re_path(rf"^customers/(?P<external_id>[^/]+)/journeys{S}$", CustomerJourneysView.as_view(),
            name="customer-journeys"),
    re_path(rf"^customers/(?P<external_id>[^/]+)/loyalty{S}$", CustomerLoyaltyView.as_view(), name="customer-loyalty"),
    re_path(rf"^customers/(?P<external_id>[^/]+)/redemptions{S}$", CustomerRedemptionsView.as_view(),
            name="customer-redemptions"),
    re_path(rf"^loyalty/rewards/(?P<reward_id>[^/]+)/codes{S}$", RewardCodesView.as_view(), name="reward-codes"),
    re_path(rf"^events{S}$", api.EventsView.as_view(), name="events"),
    re_path(rf"^products/(?P<external_id>[^/]+)/reviews{S}$", ProductReviewsView.as_view(), name="product-reviews"),
    re_path(rf"^feedback/metrics{S}$", FeedbackMetricsView.as_view(), name="feedback-metrics"),
    re_path(rf"^journeys{S}$", JourneysView.as_view(), name="journeys"),
    re_path(rf"^customers/(?P<external_id>[^/]+)/referral{S}$", CustomerReferralView.as_view(),
            name="customer-referral"),
    re_path(rf"^referrals/metrics{S}$", ReferralMetricsView.as_view(), name="referral-metrics"),
    re_path(rf"^referrals/(?P<code>[^/]+){S}$", ReferralCodeView.as_view(), name="referral-code"),
    re_path(rf"^journeys/(?P<journey_id>[^/]+){S}$", JourneyDetailView.as_view(), name="journey-detail"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="workspace:picker"), name="root"),
    path("app/", include("workspace.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("u/<str:token>", pages.unsubscribe, name="unsubscribe"),
    path("f/", include("feedback.urls")),  # survey and review links (feedback.pages)
    # Referral links: a click-tracking redirect (referrals.pages); `referral` also takes the signed token.
    path("r/<slug:store>/<str:code>", referral_pages.referral_code, name="referral-code"),
    path("r/<str:code>", referral_pages.referral, name="referral"),
    path("l/<str:token>", loyalty_page, name="loyalty"),
    # ESP tracking webhooks (e.g. /anymail/postmark/tracking/): anymail's, behind journeys.tracking's gate.
    path("anymail/", include("journeys.tracking")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # ReDoc served from our own static files (templates/api/redoc.html): the docs load offline.
    path("api/docs/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="api-docs"),
    re_path(rf"^webhooks/shopify{S}$", webhooks.shopify, name="webhook-shopify"),
    re_path(rf"^webhooks/woocommerce/(?P<public_id>[A-Za-z0-9_-]+){S}$", webhooks.woocommerce, name="webhook-woocommerce"),
]
