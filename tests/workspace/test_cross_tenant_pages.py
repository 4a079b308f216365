"""A member of globex (B) on acme's (A) pages: every workspace route answers 404 and changes nothing.

The route list is read from the URLconf and the object ids from the route's own arguments, so a new
page is covered the moment it exists; a page whose URL takes an id this file does not know fails
`test_every_workspace_route_is_covered` until OBJECT_KWARGS learns it.
"""

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from feedback.models import Review, ReviewSettings, Survey
from journeys.models import (
    AbTest,
    Delivery,
    EmailTemplate,
    Enrollment,
    Journey,
    Segment,
    Step,
    WebhookCall,
    WebhookSecret,
)
from lifecycle.models import (
    ApiKey,
    Customer,
    Event,
    Invitation,
    Membership,
    Order,
    SendingDomain,
    StoreConnection,
    Tenant,
)
from lifecycle.tenants import store_connect
from loyalty.models import Program as LoyaltyProgram
from loyalty.models import Reward as LoyaltyReward
from loyalty.models import Tier
from referrals.models import Program as ReferralProgram
from referrals.models import Referral
from tests.workspace.program_objects import programmes

pytestmark = pytest.mark.django_db

# Routes without a tenant: signing in (and its code step), the store picker, a team invitation's link (its token
# names the store: test_another_stores_member_cannot_accept_an_invitation_by_its_link), and the person's own
# account (test_the_account_pages_touch_only_the_persons_own_account).
ACCOUNT = {"workspace:account-password", "workspace:account-two-factor", "workspace:account-two-factor-off"}
UNSCOPED = {"workspace:login", "workspace:login-code", "workspace:logout", "workspace:picker", "workspace:invite",
            *ACCOUNT}
A_JOURNEY = {"name": "A welcome", "trigger": "order_paid",
             "steps": [{"position": 1, "wait": "P1D", "template": {"subject": "Hi {{ first_name }}", "body": "<p>Hi</p>"}}]}
# URL argument -> how to find tenant A's object for it.
OBJECT_KWARGS = {
    "customer_id": lambda a: a["customer"].pk,
    "order_id": lambda a: a["order"].pk,
    "journey_id": lambda a: a["journey"].pk,
    "step_id": lambda a: a["step"].pk,
    "template_id": lambda a: a["template"].pk,
    "membership_id": lambda a: a["membership"].pk,
    "api_key_id": lambda a: a["api_key"].pk,
    "connection_id": lambda a: a["connection"].pk,
    "referral_id": lambda a: a["referral"].pk,
    "review_id": lambda a: a["review"].pk,
    "tier_id": lambda a: a["tier"].pk,
    "reward_id": lambda a: a["reward"].pk,
    "survey_id": lambda a: a["survey"].pk,
    "invitation_id": lambda a: a["invitation"].pk,
    "segment_id": lambda a: a["segment"].pk,
}


def workspace_routes() -> dict[str, list[str]]:
    """name -> URL arguments besides the tenant, for every route under /app/."""
    routes = {}

    def walk(patterns, namespace, params):
        for p in patterns:
            here = params + list(getattr(p.pattern, "converters", {}))
            if isinstance(p, URLResolver):
                walk(p.url_patterns, p.namespace or namespace, here)
            elif isinstance(p, URLPattern) and namespace == "workspace":
                routes[f"workspace:{p.name}"] = [name for name in here if name != "tenant"]

    walk(get_resolver().url_patterns, None, [])
    return routes


def snapshot(tenant) -> str:
    rows = {model._meta.label: list(model.objects.for_tenant(tenant).order_by("pk").values())
            for model in (Customer, Order, Journey, Step, AbTest, EmailTemplate, Enrollment, Delivery, ApiKey,
                          StoreConnection, LoyaltyProgram, Tier, LoyaltyReward, ReferralProgram, Referral, Survey, Review,
                          Invitation, Segment, WebhookSecret, WebhookCall, ReviewSettings, SendingDomain)}
    rows["memberships"] = list(Membership.objects.filter(tenant=tenant).order_by("pk").values())
    rows["tenant"] = list(Tenant.objects.filter(pk=tenant.pk).values())
    rows["events"] = Event.objects.for_tenant(tenant).count()
    return json.dumps(rows, default=str, sort_keys=True)


@pytest.fixture
def a_objects(api, tenant, a_customer):
    from feedback.configure import review_settings_save
    from journeys.segments import builtin_definition, segment_save
    from lifecycle.sending_domains import sending_domain_save
    from workspace.invitations import invitation_create

    sending_domain_save(tenant=tenant, values={"domain": "a-store-mail.example", "esp": "postmark", "dkim_selector": "pm",
                                               "dkim_value": ""}, credentials={"server_token": "a-token"}, by="a")
    review_settings_save(tenant=tenant, values={"moderation": True, "auto_publish_min_rating": 5,
                                                "auto_publish_without_links": True}, by="a")
    owner = Membership.objects.filter(tenant=tenant, role="owner").first().user
    invitation, token = invitation_create(tenant=tenant, email="ivy@a-store.example.com", role="owner", by=owner)
    journey_id = api.post("/api/v1/journeys", A_JOURNEY).json()["id"]
    journey = Journey.objects.for_tenant(tenant).get(pk=journey_id)
    step = Step.objects.for_tenant(tenant).filter(journey=journey).first()
    order = Order.objects.for_tenant(tenant).get(external_id="A-1")
    return {**programmes(tenant, a_customer, order), "customer": a_customer, "order": order,
            "journey": journey, "step": step, "template": step.template,
            "membership": Membership.objects.filter(tenant=tenant).first(),
            "api_key": ApiKey.objects.for_tenant(tenant).first(),
            "connection": store_connect(tenant=tenant, platform="woocommerce", address="https://a-store.example.com",
                                        secret="a-store-secret"),
            "invitation": invitation, "invitation_token": token,
            "segment": segment_save(tenant=tenant, data=builtin_definition("champions"))}


def url_for(name: str, params: list[str], tenant_slug: str, a: dict) -> str:
    return reverse(name, kwargs={"tenant": tenant_slug, **{p: OBJECT_KWARGS[p](a) for p in params}})


def test_every_workspace_route_is_covered():
    routes = workspace_routes()
    assert "workspace:home" in routes and "workspace:customer" in routes
    unknown = {name: params for name, params in routes.items() if set(params) - set(OBJECT_KWARGS)}
    assert unknown == {}, "teach OBJECT_KWARGS how to find tenant A's object for these URL arguments"


def test_every_tenant_route_checks_membership_and_role():
    resolver = get_resolver()
    for name in set(workspace_routes()) - UNSCOPED:
        match = resolver.resolve(reverse(name, kwargs={"tenant": "x", **{p: 1 for p in workspace_routes()[name]}}))
        assert hasattr(match.func, "workspace_write_role"), f"{name} is not wrapped in workspace_view()"


def test_another_stores_member_gets_404_on_every_route_and_changes_nothing(a_objects, tenant, other_tenant, as_outsider):
    before = snapshot(tenant)
    b_before = snapshot(other_tenant)
    for name, params in sorted(workspace_routes().items()):
        if name in UNSCOPED:
            continue
        # A's slug: B's member is no member of A.
        path = url_for(name, params, tenant.slug, a_objects)
        for method in ("get", "post"):
            response = getattr(as_outsider, method)(path)
            assert response.status_code == 404, (name, method, path, response.status_code)
        # B's own slug with A's object ids: the object is not found in B.
        if params:
            path = url_for(name, params, other_tenant.slug, a_objects)
            for method in ("get", "post"):
                response = getattr(as_outsider, method)(path)
                assert response.status_code == 404, (name, method, path, response.status_code)
    assert snapshot(tenant) == before
    assert snapshot(other_tenant) == b_before


def test_collection_pages_of_b_show_nothing_of_a(a_objects, other_tenant, as_outsider):
    for name, params in sorted(workspace_routes().items()):
        if name in UNSCOPED or params:
            continue
        response = as_outsider.get(reverse(name, kwargs={"tenant": other_tenant.slug}))
        assert response.status_code in (200, 302), (name, response.status_code)
        body = response.content.decode()
        assert "ada@a-store.example.com" not in body, name
        assert "A welcome" not in body, name
        assert "ADA-7K3P" not in body and "Lovely beans" not in body and "Five off" not in body, name
        assert "Platinum-A" not in body and "support@a-store.example.com" not in body, name
        assert "a-store-mail.example" not in body, name


def test_another_stores_member_cannot_accept_an_invitation_by_its_link(a_objects, tenant, other_tenant, as_outsider):
    """The link is the token: B's member who holds it sees the invitation, but it is not theirs to accept."""
    path = reverse("workspace:invite", kwargs={"token": a_objects["invitation_token"]})
    before, b_before = snapshot(tenant), snapshot(other_tenant)
    assert as_outsider.get(path).status_code == 200
    for data in ({}, {"password1": "plum orchard lantern 42", "password2": "plum orchard lantern 42"}):
        assert as_outsider.post(path, data).status_code == 403
    assert as_outsider.get(reverse("workspace:home", kwargs={"tenant": tenant.slug})).status_code == 404
    assert snapshot(tenant) == before
    assert snapshot(other_tenant) == b_before


def test_the_account_pages_touch_only_the_persons_own_account(a_objects, tenant, other_tenant, outsider, as_outsider):
    """B's member on the account pages (and the code step): nothing of A is shown, nothing of A changes, and their
    own changes are audited in B only."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    before, owner_pk = snapshot(tenant), Membership.objects.filter(tenant=tenant, role="owner").first().user_id
    expected = {"workspace:account-password": (200, 400), "workspace:account-two-factor": (200, 400),
                "workspace:account-two-factor-off": (405, 400), "workspace:login-code": (302, 302)}
    for name, statuses in sorted(expected.items()):
        path = reverse(name)
        for method, data, status in (("get", None, statuses[0]),
                                     ("post", {"code": "12345678", "old_password": "x"}, statuses[1])):
            response = getattr(as_outsider, method)(path, data)
            assert response.status_code == status, (name, method, response.status_code)
            body = response.content.decode()
            assert "Acme Coffee" not in body and "ada@a-store.example.com" not in body, (name, method)
    assert snapshot(tenant) == before
    assert not TOTPDevice.objects.filter(user_id=owner_pk).exists()
    # The code tried on the setup page saved an unconfirmed device of the outsider's own, and nothing else.
    assert list(TOTPDevice.objects.values_list("user_id", "confirmed")) == [(outsider.pk, False)]
    assert not Event.objects.for_tenant(tenant).filter(type__in=["store.password_changed",
                                                                 "store.member_2fa_enabled"]).exists()
