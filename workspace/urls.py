"""/app/: the workspace. Each area keeps its own url list; every route takes the tenant slug, except signing in,
the person's own account (workspace/account.py) and an invitation's link."""

from django.urls import include, path, re_path

from workspace import (
    abtests,
    account,
    audit,
    customers,
    dashboard,
    data,
    invitations,
    orders,
    programs,
    queues,
    segments,
    sending_domain,
    store_brand,
    store_security,
    store_settings,
    views,
)
from workspace import journeys as journeys_pages

app_name = "workspace"

tenant_pages = [
    *dashboard.urlpatterns,
    *customers.urlpatterns,
    *data.urlpatterns,
    *orders.urlpatterns,
    *store_settings.urlpatterns,
    *store_brand.urlpatterns,
    *sending_domain.urlpatterns,
    *store_security.urlpatterns,
    *audit.urlpatterns,
    *programs.urlpatterns,
    *queues.urlpatterns,
    *journeys_pages.urlpatterns,
    *segments.urlpatterns,
    *abtests.urlpatterns,
]

urlpatterns = [
    path("", views.picker, name="picker"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("login/code/", views.login_code, name="login-code"),
    *account.urlpatterns,
    # A team invitation's link: the token's exact length keeps it apart from every store's pages.
    re_path(rf"^invite/(?P<token>{invitations.TOKEN_PATTERN})/$", invitations.invite, name="invite"),
    path("<slug:tenant>/", include(tenant_pages)),
]
