"""Loyalty's routes: its part of the REST API (mounted at /api/v1/ by config/urls.py) and the customer's
loyalty page, reached by a signed link."""

from django.urls import path, re_path

from lifecycle.urls import S

from .api import CustomerLoyaltyView, CustomerRedemptionsView, RewardCodesView
from .pages import loyalty_page

api_urlpatterns = [
    re_path(rf"^customers/(?P<external_id>[^/]+)/loyalty{S}$", CustomerLoyaltyView.as_view(), name="customer-loyalty"),
    re_path(rf"^customers/(?P<external_id>[^/]+)/redemptions{S}$", CustomerRedemptionsView.as_view(),
            name="customer-redemptions"),
    re_path(rf"^loyalty/rewards/(?P<reward_id>[^/]+)/codes{S}$", RewardCodesView.as_view(), name="reward-codes"),
]

urlpatterns = [
    path("l/<str:token>", loyalty_page, name="loyalty"),
]
