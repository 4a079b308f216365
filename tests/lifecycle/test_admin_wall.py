"""/admin/ is the operators' tool: a store's users reach nothing of it, operators see every store.

Store A (acme) has a row in as many admin models as its real paths make (a referral held for review,
orders, a journey's deliveries, loyalty, a review, an outbox email). Store B's owners, one created by
tenant_create and one flagged `is_staff` by the code before the admin became operators-only, walk
every admin URL read from `admin.site._registry` (each ModelAdmin's own URL patterns, so a new model
or custom admin view is walked without a change here), the index, the app indexes and the changelist
filters: each sends them to the login page with nothing of A, and their POSTs change nothing.
"""

import importlib
import io
from urllib.parse import quote

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.urls import reverse

from feedback.models import Review
from journeys.models import Delivery, Journey
from lifecycle import clock
from lifecycle.models import ApiKey, Customer, Membership, Order, OutboxMessage, Tenant
from lifecycle.tenancy import SYSTEM, TenantScopeMiddleware, current_scope, system_scope
from lifecycle.tenants import store_connect
from loyalty.models import LedgerEntry
from referrals.models import Referral, ReferralCode
from tests.feedback.helpers import nps_survey
from tests.journeys.helpers import make_journey, process_events
from tests.loyalty.helpers import program as loyalty_program
from tests.loyalty.helpers import reward as loyalty_reward
from tests.referrals.helpers import T0, make_advocate, make_program, post_order, referral_for

pytestmark = pytest.mark.django_db

HELD_ORDER = "A-HELD-4471"
# What store A's rows put on a page: its customers' emails, an order id, its name, an outbox subject.
A_MARKERS = ("ada.love@gmail.com", "adalove+1@gmail.com", HELD_ORDER, "Acme Coffee", "Acme's private note")
MISSING = "999999999"
# Rows of A that the walk must find, so its change/delete/history URLs name a real row of another store.
MUST_HAVE_ROWS = {Tenant, Membership, ApiKey, Customer, Order, OutboxMessage, Journey, Delivery, LedgerEntry,
                  Referral, ReferralCode, Review}


@pytest.fixture
def store_a(api, tenant):
    """Store A through its real entry points: loyalty and a journey first, then orders, one of them a
    self-referral held for review."""
    prog = loyalty_program(tenant)
    loyalty_reward(tenant, prog)
    make_journey(tenant, name="Acme welcome")
    nps_survey(tenant)
    make_program(tenant)
    store_connect(tenant=tenant, platform="shopify", address="acme-coffee.myshopify.com", secret="acme-secret-1")
    with clock.frozen(T0):
        code = make_advocate(api, tenant, email="ada.love@gmail.com")
        post_order(api, external_id=HELD_ORDER, referral_code=code.code,
                   customer={"external_id": "alias", "email": "adalove+1@gmail.com", "first_name": "Ada"})
        process_events()
    customer = Customer.objects.for_tenant(tenant).get(external_id="alias")
    order = Order.objects.for_tenant(tenant).get(external_id=HELD_ORDER)
    Review.objects.for_tenant(tenant).create(
        tenant=tenant, product=order.lines.first().product, customer=customer, order=order, rating=2,
        title="Acme's private note", body="Too bitter", created_at=T0)
    OutboxMessage.objects.create(tenant=tenant, from_email="hello@acme.example", to="ada.love@gmail.com",
                                 subject="Acme's private note", text_body="Hi Ada", html_body="<p>Hi Ada</p>")
    referral = referral_for(tenant, HELD_ORDER)
    assert referral.state == "review"
    return {"tenant": tenant, "customer": customer, "referral": referral}


def rows_of(tenant) -> dict[type, str]:
    """One row of `tenant` in every registered model that has one (the operator's view of the data)."""
    found = {}
    with system_scope():
        for model in admin.site._registry:
            manager = getattr(model, "all_tenants", model._default_manager)
            if model is Tenant:
                row = tenant
            elif model is get_user_model():
                row = Membership.objects.filter(tenant=tenant).first().user
            elif any(f.name == "tenant" for f in model._meta.get_fields()):
                row = manager.filter(tenant=tenant).order_by("pk").first()
            else:
                row = None
            if row is not None:
                found[model] = str(row.pk)
    return found


def admin_urls(rows: dict[type, str], customer_pk: int, tenant_pk: int) -> list[str]:
    """Every admin URL: the site's own, each app's index, and each ModelAdmin's patterns with a row
    of store A (or a missing id where A has none), plus the changelist's filters, search and facets."""
    urls = [reverse("admin:index"), reverse("admin:jsi18n"), reverse("admin:password_change"),
            reverse("admin:password_change_done"), reverse("admin:autocomplete"),
            reverse("admin:view_on_site", args=[ContentType.objects.get_for_model(Customer).pk, customer_pk])]
    urls += [reverse("admin:app_list", kwargs={"app_label": label})
             for label in sorted({model._meta.app_label for model in admin.site._registry})]
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        for pattern in model_admin.get_urls():
            if not pattern.name:  # the `<object_id>/` redirect to the change page
                continue
            kwargs = {}
            for name in pattern.pattern.converters:
                if name in ("object_id", "id", "pk"):  # "id": the user admin's password form; "pk": django-otp's
                    kwargs[name] = rows.get(model, MISSING)
                elif name == "customer_id":
                    kwargs[name] = customer_pk
                else:
                    pytest.fail(f"admin URL {pattern.name} takes {name!r}: say which row of store A it names")
            urls.append(reverse(f"admin:{pattern.name}", kwargs=kwargs))
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        urls.append(f"{changelist}?_facets=True")
        if any(f.name == "tenant" for f in opts.get_fields()):
            urls.append(f"{changelist}?tenant__id__exact={tenant_pk}&_facets=True")
        if model_admin.search_fields:
            urls.append(f"{changelist}?q={quote('ada.love@gmail.com')}")
        urls.append(f"{changelist}?o=1")
    return urls


def store_users(other_tenant):
    """Store B's owner as tenant_create makes it, and one flagged is_staff by the old code path."""
    users = get_user_model().objects
    owner = users.get(username="owner@globex.test")
    legacy = users.create_user("legacy@globex.test", "legacy@globex.test", "pw-legacy-1", is_staff=True)
    Membership.objects.create(tenant=other_tenant, user=legacy, role=Membership.Role.OWNER)
    return {"tenant_create owner": owner, "legacy staff owner": legacy}


def snapshot(tenant) -> list:
    with system_scope():
        return [list(Referral.all_tenants.filter(tenant=tenant).order_by("pk").values()),
                list(Review.all_tenants.filter(tenant=tenant).order_by("pk").values()),
                Customer.all_tenants.filter(tenant=tenant).count(), Tenant.objects.count(),
                OutboxMessage.objects.count(),
                list(get_user_model().objects.order_by("pk").values("pk", "username", "password", "is_active", "is_staff",
                                                                   "is_superuser"))]


def test_tenant_create_and_create_tenant_make_owners_that_are_neither_staff_nor_superuser(tenant, other_tenant):
    call_command("create_tenant", "initech", "--name", "Initech", "--owner-email", "Owner@Initech.test",
                 stdout=io.StringIO())
    for username in ("owner@acme.test", "owner@globex.test", "owner@initech.test"):
        user = get_user_model().objects.get(username=username)
        assert (user.is_staff, user.is_superuser) == (False, False), username


def test_every_admin_url_sends_a_store_user_to_the_login_page_with_nothing_of_another_store(
        store_a, other_tenant, other_api):
    a = store_a["tenant"]
    rows = rows_of(a)
    assert set(rows) >= MUST_HAVE_ROWS, sorted(m.__name__ for m in MUST_HAVE_ROWS - set(rows))
    urls = admin_urls(rows, store_a["customer"].pk, a.pk)
    assert len(urls) > 5 * len(admin.site._registry)
    for label, user in store_users(other_tenant).items():
        client = Client()
        client.force_login(user)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 302, (label, url, response.status_code)
            assert response["Location"].startswith("/admin/login/?next="), (label, url, response["Location"])
            assert not any(m.encode() in response.content for m in A_MARKERS), (label, url)
        login_page = client.get("/admin/")
        page = client.get(login_page["Location"])
        assert page.status_code == 200
        assert f"You are authenticated as {user.username}, but are not authorized" in page.content.decode()
        assert not any(m.encode() in page.content for m in A_MARKERS), label


def test_a_store_users_posts_to_the_admin_change_nothing(store_a, other_tenant):
    a, referral, customer = store_a["tenant"], store_a["referral"], store_a["customer"]
    review = Review.objects.for_tenant(a).get()
    outbox = OutboxMessage.objects.get()
    users = store_users(other_tenant)
    before = snapshot(a)
    posts = [
        ("/admin/referrals/referral/", {"action": "approve_selected", "_selected_action": [referral.pk]}),
        ("/admin/referrals/referral/", {"action": "reject_selected", "_selected_action": [referral.pk]}),
        (f"/admin/feedback/review/{review.pk}/change/", {"action": "reject", "rejection_reason": "spam",
                                                         "store_reply": "no"}),
        ("/admin/feedback/review/", {"action": "approve_selected", "_selected_action": [review.pk]}),
        (f"/admin/lifecycle/customer/{customer.pk}/delete/", {"post": "yes"}),
        ("/admin/lifecycle/customer/", {"action": "delete_selected", "_selected_action": [customer.pk], "post": "yes"}),
        (f"/admin/lifecycle/outboxmessage/{outbox.pk}/delete/", {"post": "yes"}),
        ("/admin/lifecycle/tenant/add/", {"name": "Mine now", "slug": "mine", "currency": "EUR", "time_zone": "UTC"}),
        (f"/admin/auth/user/{get_user_model().objects.get(username='owner@globex.test').pk}/change/",
         {"username": "owner@globex.test", "is_staff": "on", "is_superuser": "on", "is_active": "on"}),
    ]
    for label, user in users.items():
        client = Client()
        client.force_login(user)
        for url, data in posts:
            response = client.post(url, data)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), (label, url)
    assert snapshot(a) == before
    referral.refresh_from_db()
    assert (referral.state, referral.decided_by, referral.decided_at) == ("review", "", None)


def test_the_admin_login_form_refuses_store_users_with_their_right_password(store_a, other_tenant):
    owner = get_user_model().objects.get(username="owner@globex.test")
    owner.set_password("pw-owner-1")
    owner.save()
    store_users(other_tenant)
    for username, password in (("owner@globex.test", "pw-owner-1"), ("legacy@globex.test", "pw-legacy-1")):
        client = Client()
        page = client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})
        assert page.status_code == 200
        assert "for an operator account" in page.content.decode()
        assert "Store owners and their teams sign in to the workspace at /app/login/." in page.content.decode()
        assert "_auth_user_id" not in client.session
        assert client.get("/admin/lifecycle/customer/").status_code == 302


def test_only_an_operator_gets_the_all_stores_scope_on_the_admin():
    users = get_user_model().objects
    staff = users.create_user("staff", "s@example.com", "pw", is_staff=True)
    operator = users.create_superuser("root", "root@example.com", "pw")
    asleep = users.create_superuser("gone", "gone@example.com", "pw", is_active=False)
    seen = []
    middleware = TenantScopeMiddleware(lambda request: seen.append(current_scope()))
    for user, path in ((staff, "/admin/"), (asleep, "/admin/"), (operator, "/app/"), (operator, "/admin/")):
        request = RequestFactory().get(path)
        request.user = user
        middleware(request)
    assert seen == [None, None, None, (SYSTEM, None)]


def test_an_operator_sees_and_decides_for_every_store(store_a, other_tenant, other_api):
    a, referral = store_a["tenant"], store_a["referral"]
    post_order(other_api, external_id="B-1", customer={"external_id": "b-1", "email": "bo@globex.example"})
    operator = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-ops-1")
    client = Client()
    client.force_login(operator)
    for url in admin_urls(rows_of(a), store_a["customer"].pk, a.pk):
        response = client.get(url)  # 403: read-only add/delete; 404: customers have no page on a site
        assert response.status_code in (200, 302, 403, 404), (url, response.status_code)
    customers = client.get("/admin/lifecycle/customer/").content.decode()
    assert "ada.love@gmail.com" in customers and "bo@globex.example" in customers
    held = client.get(f"/admin/referrals/referral/?state__exact=review&tenant__id__exact={a.pk}")
    assert HELD_ORDER in held.content.decode()

    response = client.post("/admin/referrals/referral/", {"action": "approve_selected",
                                                          "_selected_action": [referral.pk]})
    assert response.status_code == 302
    referral.refresh_from_db()
    assert (referral.state, referral.decided_by) == ("converted", "ops")


def test_the_outbox_is_read_only_and_ledger_entries_are_spelled_right(store_a):
    operator = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-ops-1")
    client = Client()
    client.force_login(operator)
    outbox = OutboxMessage.objects.get()
    assert client.get("/admin/lifecycle/outboxmessage/add/").status_code == 403
    assert client.post("/admin/lifecycle/outboxmessage/add/", {"to": "x@example.com", "subject": "forged"}).status_code == 403
    assert client.get(f"/admin/lifecycle/outboxmessage/{outbox.pk}/delete/").status_code == 403
    assert client.post(f"/admin/lifecycle/outboxmessage/{outbox.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/lifecycle/outboxmessage/{outbox.pk}/change/",
                       {"subject": "edited", "to": "x@example.com"}).status_code == 403
    bulk = client.post("/admin/lifecycle/outboxmessage/", {"action": "delete_selected", "_selected_action": [outbox.pk],
                                                          "post": "yes"})
    assert bulk.status_code == 200  # "no action selected": delete_selected is not offered
    view = client.get(f"/admin/lifecycle/outboxmessage/{outbox.pk}/change/")
    assert view.status_code == 200 and b"Acme&#x27;s private note" in view.content and b'name="_save"' not in view.content
    assert list(OutboxMessage.objects.values_list("subject", "to")) == [("Acme's private note", "ada.love@gmail.com")]

    index = client.get("/admin/").content.decode()
    assert "Ledger entries" in index and "Ledger entrys" not in index
    assert "Deliveries" in index and "Webhook deliveries" in index


def test_the_migration_clears_staff_on_every_user_but_superusers():
    users = get_user_model().objects
    legacy = users.create_user("legacy", "l@example.com", "pw", is_staff=True)
    plain = users.create_user("plain", "p@example.com", "pw")
    operator = users.create_superuser("root", "root@example.com", "pw")
    migration = importlib.import_module("lifecycle.migrations.0008_store_users_are_not_staff")
    migration.clear_staff_of_non_superusers(apps, None)
    assert [(u.username, u.is_staff, u.is_superuser) for u in users.order_by("username")] == [
        ("legacy", False, False), ("plain", False, False), ("root", True, True)]
    assert {legacy.pk, plain.pk, operator.pk} == set(users.values_list("pk", flat=True))
