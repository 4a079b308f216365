"""Store settings: the team, API keys, store connections, sender and brand, deliverability.

Everyone in the store may read them; only owners change them. People join the team by accepting an
emailed invitation (workspace/invitations.py). Secrets (an API key, a webhook secret) are shown once, in the answer to the POST that made
them, and stored nowhere in the clear: the API key as its SHA-256, the webhook secret
encrypted (lifecycle/crypto.py). A reload asks the browser to
post again, which makes a new secret rather than showing the old one.

Each write is a service here (one transaction, a `store.*` event on the store's timeline
naming who did it), or the existing one in lifecycle/services.py and journeys/deliverability.py.
"""

import datetime as dt
import secrets
from typing import Any

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from journeys.deliverability import deliverability_rates, deliverability_status, marketing_resume
from journeys.models import WebhookAttempt, WebhookCall
from journeys.preview import sample_email
from journeys.webhooks import ROTATION_GRACE as WEBHOOK_ROTATION_GRACE
from journeys.webhooks import webhook_secret_rotate, webhook_secret_status
from lifecycle import clock
from lifecycle.addresses import webhook_url
from lifecycle.changes import field_changes
from lifecycle.errors import ServiceError
from lifecycle.models import ApiKey, Invitation, Membership, StoreConnection, Tenant, time_zone_choices
from lifecycle.sending_domains import on_domain, sending_domain_for
from lifecycle.tenants import api_key_create, api_key_revoke, store_connect, store_rotate_secret
from lifecycle.timeline import event_append
from workspace.access import workspace_view
from workspace.customers import object_action, refuse_write
from workspace.invitations import invitation_create, invitation_revoke

OWNER = Membership.Role.OWNER
# How long a rotated-out webhook secret keeps verifying: Shopify takes up to an hour to switch.
ROTATION_GRACE = dt.timedelta(hours=2)
# At most one marketing email per customer per this many hours: a week is the longest cap that
# still lets a weekly journey through.
MAX_FREQUENCY_CAP_HOURS = 168
SECRET_MIN_LENGTH = 8
PLATFORM_NAMES = {StoreConnection.Platform.SHOPIFY: "Shopify", StoreConnection.Platform.WOOCOMMERCE: "WooCommerce",
                  StoreConnection.Platform.CUSTOM: "Custom (API)"}
SETTINGS_FIELDS = ("sender_name", "sender_email", "reply_to", "time_zone", "quiet_hours_start", "quiet_hours_end",
                   "frequency_cap_hours")  # the footer address is the brand's (workspace/store_brand.py)


# --- services ----------------------------------------------------------------------------


def _locked_tenant(tenant: Tenant) -> Tenant:
    """Lock the store's row: team changes of one store happen one at a time (the last-owner rule)."""
    return Tenant.objects.select_for_update().get(pk=tenant.pk)


def tenant_settings_update(*, tenant: Tenant, values: dict[str, Any], by: str,
                           fields: tuple[str, ...] = SETTINGS_FIELDS) -> list[str]:
    """Save the sender settings, or the brand's (`fields`; already validated). Returns the fields that changed.

    Writes only those fields, so the deliverability check's own columns are never overwritten.
    """
    with transaction.atomic():
        locked = _locked_tenant(tenant)
        changed = [name for name in fields if getattr(locked, name) != values[name]]
        if not changed:
            return []
        changes = field_changes(locked, changed, values)
        for name in changed:
            setattr(locked, name, values[name])
        locked.save(update_fields=changed)
        event_append(tenant=locked, type="store.settings_changed", occurred_at=clock.now(),
                     data={"fields": changed, "changes": changes, "by": by})
    tenant.refresh_from_db(fields=changed)
    return changed


def _owners_left(tenant: Tenant, without: Membership) -> int:
    return Membership.objects.filter(tenant=tenant, role=OWNER).exclude(pk=without.pk).count()


def member_set_role(*, tenant: Tenant, membership: Membership, role: str, by: str) -> bool:
    """Change a member's role. The store's last owner stays an owner. Returns False when unchanged."""
    with transaction.atomic():
        locked = _locked_tenant(tenant)
        current = Membership.objects.select_for_update().get(pk=membership.pk, tenant=locked)
        if current.role == role:
            return False
        if current.role == OWNER and _owners_left(locked, current) == 0:
            raise ServiceError("team.last_owner", f"{current.user.get_username()} is the store's only owner: "
                                                  "make someone else an owner first.", {"role": ["last owner"]})
        previous = current.role
        current.role = role
        current.save(update_fields=["role"])
        event_append(tenant=locked, type="store.member_role_changed", occurred_at=clock.now(),
                     data={"user": current.user.get_username(), "from": previous, "to": role, "by": by})
    membership.role = role
    return True


def member_remove(*, tenant: Tenant, membership: Membership, by: str) -> None:
    """Take a member out of the store (their account stays). The last owner cannot be removed."""
    with transaction.atomic():
        locked = _locked_tenant(tenant)
        current = Membership.objects.select_for_update().get(pk=membership.pk, tenant=locked)
        if current.role == OWNER and _owners_left(locked, current) == 0:
            raise ServiceError("team.last_owner", f"{current.user.get_username()} is the store's only owner: "
                                                  "make someone else an owner first.")
        username = current.user.get_username()
        current.delete()
        event_append(tenant=locked, type="store.member_removed", occurred_at=clock.now(),
                     data={"user": username, "role": current.role, "by": by})


def workspace_api_key_create(*, tenant: Tenant, name: str, by: str) -> tuple[ApiKey, str]:
    """A new API key; returns it with the full key, which exists nowhere else after this answer."""
    with transaction.atomic():
        api_key, full = api_key_create(tenant=tenant, name=name)
        event_append(tenant=tenant, type="store.api_key_created", occurred_at=clock.now(),
                     data={"name": name, "prefix": api_key.prefix, "by": by})
    return api_key, full


def workspace_api_key_revoke(*, tenant: Tenant, api_key: ApiKey, by: str) -> bool:
    """Revoke a key at once. False when it already was."""
    with transaction.atomic():
        revoked = api_key_revoke(tenant=tenant, prefix=api_key.prefix)
        if revoked:
            event_append(tenant=tenant, type="store.api_key_revoked", occurred_at=clock.now(),
                         data={"name": api_key.name, "prefix": api_key.prefix, "by": by})
    return revoked


def workspace_store_connect(*, tenant: Tenant, platform: str, address: str, secret: str, by: str) -> StoreConnection:
    with transaction.atomic():
        conn = store_connect(tenant=tenant, platform=platform, address=address, secret=secret)
        event_append(tenant=tenant, type="store.connected", occurred_at=clock.now(),
                     data={"platform": platform, "address": conn.shop_domain or conn.site_url, "by": by})
    return conn


def workspace_store_rotate(*, tenant: Tenant, conn: StoreConnection, secret: str, by: str) -> StoreConnection:
    with transaction.atomic():
        rotated = store_rotate_secret(connection_=conn, secret=secret, grace=ROTATION_GRACE)
        event_append(tenant=tenant, type="store.secret_rotated", occurred_at=clock.now(),
                     data={"connection": conn.public_id, "old_secret_valid_until":
                           rotated.previous_secret_valid_until.isoformat(), "by": by})
    return rotated


# --- forms -------------------------------------------------------------------------------


class SettingsForm(forms.ModelForm):
    time_zone = forms.ChoiceField(label="Time zone", choices=())

    class Meta:
        model = Tenant
        fields = list(SETTINGS_FIELDS)
        labels = {"sender_name": "Sender name", "sender_email": "Sender address", "reply_to": "Reply-to address",
                  "quiet_hours_start": "Quiet hours from",
                  "quiet_hours_end": "Quiet hours until", "frequency_cap_hours": "At most one marketing email per"}
        help_texts = {
            "sender_name": "Shown as who the email is from.",
            "sender_email": "Blank: the platform's address. Use an address on a domain you have authenticated.",
            "reply_to": "Where customers' replies go. Blank: the sender address.",
            "quiet_hours_start": "No email lands between these times in the customer's time zone (else the "
                                 "store's). The same time twice: no quiet hours.",
            "frequency_cap_hours": f"Hours, across all journeys: 1 to {MAX_FREQUENCY_CAP_HOURS}.",
        }
        widgets = {
            "quiet_hours_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "quiet_hours_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(z, z) for z in sorted(time_zone_choices())]
        self.fields["sender_name"].required = True

    def clean_sender_email(self) -> str:
        address = self.cleaned_data.get("sender_email") or ""
        own = sending_domain_for(self.instance)
        if address and own is not None and not on_domain(address, own.domain):
            raise forms.ValidationError(f"{address} is not on your sending domain {own.domain}: use an address "
                                        f"@{own.domain}, or change the sending domain first.")
        return address

    def clean_frequency_cap_hours(self) -> int:
        hours = self.cleaned_data["frequency_cap_hours"]
        if hours is None or not 1 <= hours <= MAX_FREQUENCY_CAP_HOURS:
            raise forms.ValidationError(f"Choose between 1 and {MAX_FREQUENCY_CAP_HOURS} hours.")
        return hours


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email address", max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MARKETER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, help_text="What uses it, such as “checkout backend”.")


class ConnectForm(forms.Form):
    platform = forms.ChoiceField(choices=[(StoreConnection.Platform.SHOPIFY, "Shopify"),
                                          (StoreConnection.Platform.WOOCOMMERCE, "WooCommerce")])
    address = forms.CharField(label="Shop address", max_length=255,
                              help_text="Shopify: my-shop.myshopify.com · WooCommerce: https://shop.example.com")
    secret = forms.CharField(label="Webhook secret", required=False, min_length=SECRET_MIN_LENGTH, max_length=200,
                             widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                             help_text="Shopify: the signing secret from Settings → Notifications → Webhooks. "
                                       "WooCommerce: leave blank and one is made for you to paste.")


class RotateForm(forms.Form):
    secret = forms.CharField(label="New secret", required=False, min_length=SECRET_MIN_LENGTH, max_length=200,
                             help_text="Blank: a new random one (WooCommerce). Shopify: its new signing secret.")


# --- views -------------------------------------------------------------------------------


def _by(request: HttpRequest) -> str:
    return request.user.get_username()


def _apply_service_error(form: forms.Form, exc: ServiceError, field: str | None = None) -> None:
    form.add_error(field if field in form.fields else None, exc.message)


@workspace_view(write_role=OWNER)
def general(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Sender and brand settings, and the deliverability guardrails' verdict."""
    status = 200
    # The form validates on a copy: the tenant the request (and the page around the form) holds keeps its
    # saved values, and only the service writes, under the row's lock.
    form = SettingsForm(request.POST if request.method == "POST" else None,
                        instance=Tenant.objects.get(pk=tenant.pk))
    previewing = request.method == "POST" and "preview" in request.POST
    if previewing:  # the email as these unsaved values would send it; nothing is written
        status = 200 if form.is_valid() else 400
    elif request.method == "POST":
        if form.is_valid():
            changed = tenant_settings_update(tenant=tenant, values=form.cleaned_data, by=_by(request))
            messages.success(request, "Settings saved." if changed else "Nothing changed.")
            return redirect("workspace:settings", tenant=tenant.slug)
        status = 400
    shown = form.instance if previewing and not form.errors else Tenant.objects.get(pk=tenant.pk)
    return render(request, "workspace/settings/general.html", {
        "section": "general", "form": form, "deliverability": deliverability_status(tenant),
        "rates": deliverability_rates(tenant=tenant), "previewing": previewing,
        "preview": sample_email(tenant=shown), "rules": sending_rules(shown),
    }, status=status)


def sending_rules(tenant: Tenant) -> list[str]:
    """The quiet hours and the cap in words, as the send gate applies them (journeys/schedule.py)."""
    start, end = tenant.quiet_hours_start, tenant.quiet_hours_end
    quiet = (f"No email lands between {start:%H:%M} and {end:%H:%M} in the customer's time zone (else "
             f"{tenant.time_zone}): one due then waits until {end:%H:%M}." if start != end
             else "No quiet hours: an email goes out whenever it falls due.")
    cap = (f"A customer gets at most one marketing email per {tenant.frequency_cap_hours} hours across all journeys; "
           "another one due sooner waits, it is not dropped.")
    return [quiet, cap]


@workspace_view(write_role=OWNER)
def resume_marketing(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method == "POST":
        if marketing_resume(tenant=tenant, by=_by(request)):
            messages.success(request, "Marketing email is resumed: held emails go out within the hour, and the "
                                      "rates count afresh from now.")
        else:
            messages.info(request, "Marketing email was not paused: nothing changed.")
    return redirect("workspace:settings", tenant=tenant.slug)


def _team_page(request: HttpRequest, tenant: Tenant, *, form: InviteForm | None = None, status: int = 200,
               invited: Invitation | None = None, error: str = "") -> HttpResponse:
    members = list(Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__username"))
    pending = list(Invitation.objects.for_tenant(tenant)
                   .filter(accepted_at=None, revoked_at=None, expires_at__gt=clock.now())
                   .select_related("invited_by").order_by("-created_at", "-pk"))
    return render(request, "workspace/settings/team.html", {
        "section": "team", "members": members, "form": form or InviteForm(), "roles": Membership.Role.choices,
        "invited": invited, "pending": pending, "error": error,
    }, status=status)


@workspace_view(write_role=OWNER)
def team(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Members, their roles and pending invitations; an owner invites people here.

    The answer to an invitation is the same whether the address has an account or not.
    """
    if request.method != "POST":
        return _team_page(request, tenant)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _team_page(request, tenant, form=form, status=400)
    try:
        invitation, _token = invitation_create(tenant=tenant, email=form.cleaned_data["email"],
                                               role=form.cleaned_data["role"], by=request.user)
    except ServiceError as exc:
        _apply_service_error(form, exc, "email")
        return _team_page(request, tenant, form=form, status=400)
    return _team_page(request, tenant, invited=invitation)


@object_action(write_role=OWNER)
def team_invitation_revoke(request: HttpRequest, tenant: Tenant, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation.objects.for_tenant(tenant), pk=invitation_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    if request.method == "POST":
        if invitation_revoke(tenant=tenant, invitation=invitation, by=_by(request)):
            messages.success(request, f"The invitation of {invitation.email} is withdrawn: its link no longer works.")
        else:
            messages.info(request, f"The invitation of {invitation.email} was no longer pending.")
    return redirect("workspace:settings-team", tenant=tenant.slug)


@object_action(write_role=OWNER)
def team_role(request: HttpRequest, tenant: Tenant, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.select_related("user"), tenant=tenant, pk=membership_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    if request.method != "POST":
        return redirect("workspace:settings-team", tenant=tenant.slug)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _team_page(request, tenant, status=400,
                          error=f"Choose a role for {membership.user.get_username()}: owner, marketer or viewer.")
    try:
        changed = member_set_role(tenant=tenant, membership=membership, role=form.cleaned_data["role"], by=_by(request))
    except ServiceError as exc:
        return _team_page(request, tenant, status=400, error=exc.message)
    if changed:
        messages.success(request, f"{membership.user.get_username()} is now {membership.role}.")
    return redirect("workspace:settings-team", tenant=tenant.slug)


@object_action(write_role=OWNER)
def team_remove(request: HttpRequest, tenant: Tenant, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.select_related("user"), tenant=tenant, pk=membership_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    if request.method != "POST":  # the confirmation: a GET (a link, a prefetch) removes nobody
        return render(request, "workspace/settings/team_remove.html", {
            "section": "team", "member": membership, "is_self": membership.user_id == request.user.pk,
            "last_owner": membership.role == OWNER and _owners_left(tenant, membership) == 0})
    try:
        member_remove(tenant=tenant, membership=membership, by=_by(request))
    except ServiceError as exc:
        return _team_page(request, tenant, status=400, error=exc.message)
    messages.success(request, f"{membership.user.get_username()} is no longer in {tenant.name}'s team.")
    if membership.user_id == request.user.pk and not request.user.is_superuser:
        return redirect("workspace:picker")
    return redirect("workspace:settings-team", tenant=tenant.slug)


def _keys_page(request: HttpRequest, tenant: Tenant, *, form: ApiKeyForm | None = None, status: int = 200,
               created: dict[str, str] | None = None) -> HttpResponse:
    keys = list(ApiKey.objects.for_tenant(tenant).order_by("revoked_at", "-created_at", "-pk")
                .only("pk", "name", "prefix", "created_at", "last_used_at", "revoked_at"))
    return render(request, "workspace/settings/keys.html", {
        "section": "keys", "keys": keys, "form": form or ApiKeyForm(), "created": created}, status=status)


@workspace_view(write_role=OWNER)
def api_keys(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method != "POST":
        return _keys_page(request, tenant)
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _keys_page(request, tenant, form=form, status=400)
    api_key, full = workspace_api_key_create(tenant=tenant, name=form.cleaned_data["name"].strip(), by=_by(request))
    return _keys_page(request, tenant, created={"name": api_key.name, "key": full}, status=201)


@object_action(write_role=OWNER)
def api_key_revoke_view(request: HttpRequest, tenant: Tenant, api_key_id: int) -> HttpResponse:
    api_key = get_object_or_404(ApiKey.objects.for_tenant(tenant), pk=api_key_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    if request.method == "POST":
        if workspace_api_key_revoke(tenant=tenant, api_key=api_key, by=_by(request)):
            messages.success(request, f"Key “{api_key.name}” (lc_{api_key.prefix}_…) is revoked: requests with it "
                                      "are refused from now on.")
        else:
            messages.info(request, f"Key “{api_key.name}” was already revoked.")
    return redirect("workspace:settings-keys", tenant=tenant.slug)


def _stores_page(request: HttpRequest, tenant: Tenant, *, form: ConnectForm | None = None, status: int = 200,
                 secret: dict[str, Any] | None = None, error: str = "") -> HttpResponse:
    connections = list(StoreConnection.objects.for_tenant(tenant).order_by("created_at", "pk"))
    rows = [{"conn": c, "webhook_url": webhook_url(c), "address": c.shop_domain or c.site_url,
             "platform": PLATFORM_NAMES.get(c.platform, c.platform),
             "in_grace": bool(c.previous_webhook_secret_encrypted and c.previous_secret_valid_until
                              and c.previous_secret_valid_until > clock.now())} for c in connections]
    return render(request, "workspace/settings/stores.html", {
        "section": "stores", "connections": rows, "form": form or ConnectForm(), "rotate_form": RotateForm(),
        "secret": secret, "error": error, "grace_hours": int(ROTATION_GRACE.total_seconds() // 3600),
    }, status=status)


@workspace_view(write_role=OWNER)
def stores(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method != "POST":
        return _stores_page(request, tenant)
    form = ConnectForm(request.POST)
    if not form.is_valid():
        return _stores_page(request, tenant, form=form, status=400)
    data = form.cleaned_data
    generated = not data["secret"]
    secret = data["secret"] or secrets.token_urlsafe(32)
    try:
        conn = workspace_store_connect(tenant=tenant, platform=data["platform"], address=data["address"],
                                       secret=secret, by=_by(request))
    except ServiceError as exc:
        _apply_service_error(form, exc, "address")
        return _stores_page(request, tenant, form=form, status=exc.status if exc.status != 404 else 400)
    shown = {"conn": conn, "webhook_url": webhook_url(conn), "secret": secret if generated else "", "new": True,
             "platform": PLATFORM_NAMES.get(conn.platform, conn.platform)}
    return _stores_page(request, tenant, secret=shown, status=201)


@object_action(write_role=OWNER)
def store_rotate(request: HttpRequest, tenant: Tenant, connection_id: int) -> HttpResponse:
    conn = get_object_or_404(StoreConnection.objects.for_tenant(tenant), pk=connection_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    if request.method != "POST":
        return redirect("workspace:settings-stores", tenant=tenant.slug)
    form = RotateForm(request.POST)
    if not form.is_valid():
        return _stores_page(request, tenant, status=400,
                            error=" ".join(str(e) for errors in form.errors.values() for e in errors))
    secret = form.cleaned_data["secret"] or secrets.token_urlsafe(32)
    generated = not form.cleaned_data["secret"]
    rotated = workspace_store_rotate(tenant=tenant, conn=conn, secret=secret, by=_by(request))
    shown = {"conn": rotated, "webhook_url": webhook_url(rotated), "secret": secret if generated else "",
             "valid_until": rotated.previous_secret_valid_until, "platform": PLATFORM_NAMES.get(conn.platform, conn.platform)}
    return _stores_page(request, tenant, secret=shown)


# Outbound webhook calls listed on the page, newest first: enough to see what a receiver has been answering.
RECENT_CALLS = 20


def _webhooks_page(request: HttpRequest, tenant: Tenant, *, secret: str = "", status: int = 200) -> HttpResponse:
    calls = list(WebhookCall.objects.for_tenant(tenant).select_related("customer", "journey")
                 .order_by("-created_at", "-pk")[:RECENT_CALLS])
    attempts: dict[int, list[WebhookAttempt]] = {}
    for attempt in WebhookAttempt.objects.for_tenant(tenant).filter(call__in=calls).order_by("number"):
        attempts.setdefault(attempt.call_id, []).append(attempt)
    current = webhook_secret_status(tenant=tenant)
    return render(request, "workspace/settings/webhooks.html", {
        "section": "webhooks", "current": current, "secret": secret,
        "in_grace": bool(current and current.previous_valid_until and current.previous_valid_until > clock.now()),
        "grace_hours": int(WEBHOOK_ROTATION_GRACE.total_seconds() // 3600),
        "calls": [{"call": c, "attempts": attempts.get(c.pk, [])} for c in calls]}, status=status)


@workspace_view(write_role=OWNER)
def webhooks(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """The store's signing secret for outbound webhook steps (made or rotated by a POST, shown in its answer
    only) and the latest calls with every attempt."""
    if request.method != "POST":
        return _webhooks_page(request, tenant)
    secret = webhook_secret_rotate(tenant=tenant, by=_by(request))
    return _webhooks_page(request, tenant, secret=secret, status=201)


urlpatterns = [
    path("settings/", general, name="settings"),
    path("settings/resume-marketing/", resume_marketing, name="settings-resume-marketing"),
    path("settings/team/", team, name="settings-team"),
    path("settings/team/<int:membership_id>/role/", team_role, name="settings-team-role"),
    path("settings/team/<int:membership_id>/remove/", team_remove, name="settings-team-remove"),
    path("settings/team/invitations/<int:invitation_id>/revoke/", team_invitation_revoke,
         name="settings-team-invitation-revoke"),
    path("settings/api-keys/", api_keys, name="settings-keys"),
    path("settings/api-keys/<int:api_key_id>/revoke/", api_key_revoke_view, name="settings-key-revoke"),
    path("settings/stores/", stores, name="settings-stores"),
    path("settings/stores/<int:connection_id>/rotate/", store_rotate, name="settings-store-rotate"),
    path("settings/webhooks/", webhooks, name="settings-webhooks"),
]
