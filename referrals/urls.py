"""Referrals' routes: its part of the REST API (mounted at /api/v1/ by config/urls.py) and the referral
links, a click-tracking redirect (`referral` also takes the signed token)."""

from django.urls import path, re_path

from lifecycle.urls import S

from . import pages
from .api import CustomerReferralView, ReferralCodeView, ReferralMetricsView

api_urlpatterns = [
    re_path(rf"^customers/(?P<external_id>[^/]+)/referral{S}$", CustomerReferralView.as_view(),
            name="customer-referral"),
    re_path(rf"^referrals/metrics{S}$", ReferralMetricsView.as_view(), name="referral-metrics"),
    re_path(rf"^referrals/(?P<code>[^/]+){S}$", ReferralCodeView.as_view(), name="referral-code"),
]

urlpatterns = [
    path("r/<slug:store>/<str:code>", pages.referral_code, name="referral-code"),
    path("r/<str:code>", pages.referral, name="referral"),
]
