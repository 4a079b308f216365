"""Team invitations: an owner invites an address; whoever holds the emailed link accepts it.

Nobody is added to a store without their consent, and inviting tells the owner nothing about
whether the address has an account: the team page answers the same either way, and the link
goes only to the address (never onto the owner's page), so only that mailbox learns it.

The link (/app/invite/<token>/) is the only place the token exists; the row keeps its SHA-256.
A GET shows the invitation and changes nothing (mail scanners follow links); a POST accepts:
- signed in with the invited address: that account joins;
- signed out, new to the product: they choose a password and an account is made for the address;
- an existing account must sign in first (the page links to sign-in and back): no silent adding.
A used, withdrawn or expired link, or one that never was, gets a page that says so.
"""

import datetime as dt
import logging
import secrets

from anymail.exceptions import AnymailError
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from lifecycle import clock
from lifecycle.errors import ServiceError
from lifecycle.models import Invitation, Membership, Tenant
from lifecycle.tenancy import activate, system_scope
from lifecycle.timeline import event_append

log = logging.getLogger(__name__)

VALID_FOR = dt.timedelta(days=7)
# secrets.token_urlsafe(32): 43 characters, which the URL pattern asks for exactly.
TOKEN_BYTES = 32
TOKEN_PATTERN = r"[A-Za-z0-9_-]{43}"  # noqa: S105 - a pattern, not a secret


def _user_with_email(email: str):
    """The account an address names: its email, or a username that is the address (how accounts were made)."""
    return (get_user_model().objects.filter(Q(email__iexact=email) | Q(username__iexact=email))
            .order_by("pk").first())


def is_invitee(user, invitation: Invitation) -> bool:
    return invitation.email in {(user.email or "").lower(), user.get_username().lower()}


def accept_url(token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{reverse('workspace:invite', kwargs={'token': token})}"


# --- services ----------------------------------------------------------------------------


def invitation_create(*, tenant: Tenant, email: str, role: str, by) -> tuple[Invitation, str]:
    """Invite an address to the store as `role`; returns the invitation and its token (for the email only).

    An earlier pending invitation of the same address is withdrawn: one live link per address.
    Someone already in the team is refused (the team page lists them anyway).
    """
    email = email.strip().lower()
    now = clock.now()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)  # team changes one at a time
        user = _user_with_email(email)
        if user is not None and Membership.objects.filter(tenant=locked, user=user).exists():
            raise ServiceError("team.already_member", f"{email} is already in this store's team.",
                               {"email": ["is already a member"]})
        Invitation.objects.for_tenant(locked).filter(email=email, accepted_at=None, revoked_at=None).update(
            revoked_at=now)
        invitation = Invitation.objects.for_tenant(locked).create(
            tenant=locked, email=email, role=role, token_hash=Invitation.hash_token(token), invited_by=by,
            created_at=now, expires_at=now + VALID_FOR)
        event_append(tenant=locked, type="store.member_invited", occurred_at=now,
                     data={"email": email, "role": role, "by": by.get_username(),
                           "expires_at": invitation.expires_at.isoformat()})
    _send(invitation, token)  # after the commit: a slow ESP holds no lock
    return invitation, token


def _send(invitation: Invitation, token: str) -> None:
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "An owner"
    store = invitation.tenant.name
    body = (f"{inviter} invited you to join {store}'s team on Lifecycle as {invitation.role}.\n\n"
            f"To accept, open this link (valid until {invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n"
            f"{accept_url(token)}\n\n"
            "If you did not expect this, ignore this email: nothing happens unless you accept.")
    message = EmailMultiAlternatives(
        subject=f"{inviter} invited you to {store} on Lifecycle", body=body, to=[invitation.email],
        headers={"Message-ID": f"<invitation.{invitation.tenant_id}.{invitation.pk}@lifecycle>"})
    message.metadata = {"tenant_id": invitation.tenant_id, "invitation_id": invitation.pk}
    try:
        message.send()
    except (OSError, AnymailError):
        # The invitation stands; the owner sees it pending and can invite again to send a new link.
        log.exception("The invitation email to %s could not be sent", invitation.email)


def invitation_revoke(*, tenant: Tenant, invitation: Invitation, by: str) -> bool:
    """Withdraw a pending invitation: its link stops working. False when it was no longer pending."""
    now = clock.now()
    with transaction.atomic():
        changed = Invitation.objects.for_tenant(tenant).filter(
            pk=invitation.pk, accepted_at=None, revoked_at=None, expires_at__gt=now).update(revoked_at=now)
        if changed:
            event_append(tenant=tenant, type="store.invitation_revoked", occurred_at=now,
                         data={"email": invitation.email, "role": invitation.role, "by": by})
    return bool(changed)


def invitation_accept(*, invitation: Invitation, user) -> Membership:
    """`user` joins the store as invited. The invitation must still be pending and be for their address."""
    now = clock.now()
    with transaction.atomic():
        current = Invitation.objects.for_tenant(invitation.tenant_id).select_for_update().get(pk=invitation.pk)
        state = current.state(now)
        if state != "pending":
            raise ServiceError(f"invitation.{state}", UNAVAILABLE[state][1])
        if not is_invitee(user, current):
            raise ServiceError("invitation.other_user", f"This invitation is for {current.email}.")
        membership, created = Membership.objects.get_or_create(tenant_id=current.tenant_id, user=user,
                                                               defaults={"role": current.role})
        current.accepted_at, current.accepted_by = now, user
        current.save(update_fields=["accepted_at", "accepted_by"])
        if created:
            event_append(tenant=current.tenant, type="store.member_added", occurred_at=now,
                         data={"user": user.get_username(), "role": current.role, "via": "invitation",
                               "invited_by": current.invited_by.get_username() if current.invited_by else None})
    return membership


# --- the link ----------------------------------------------------------------------------

# state -> (status, what the page says)
UNAVAILABLE = {
    "unknown": (404, "This invitation link is not valid. Check that you opened the whole link from the email, "
                     "or ask the store's owner for a new invitation."),
    "accepted": (410, "This invitation has already been accepted. Sign in to open the store."),
    "revoked": (410, "This invitation was withdrawn by the store's owner. Ask them for a new one if you still "
                     "need access."),
    "expired": (410, "This invitation has expired. Ask the store's owner to invite you again."),
}


class NewAccountForm(forms.Form):
    password1 = forms.CharField(label="Choose a password", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(label="The same password again", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args, email: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self):
        data = super().clean()
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ: type the same one twice.")
        elif first:
            try:
                validate_password(first, get_user_model()(username=self.email, email=self.email))
            except ValidationError as exc:
                self.add_error("password1", exc)
        return data


def _find(token: str) -> Invitation | None:
    with system_scope():  # the token names the store: one indexed lookup, then that store's scope
        invitation = (Invitation.all_tenants.select_related("tenant", "invited_by")
                      .filter(token_hash=Invitation.hash_token(token)).first())
    if invitation is not None:
        activate(invitation.tenant_id)
    return invitation


def _unavailable(request: HttpRequest, state: str) -> HttpResponse:
    status, message = UNAVAILABLE[state]
    return render(request, "workspace/invitations/unavailable.html", {"message": message}, status=status)


def _page(request: HttpRequest, invitation: Invitation, *, form: NewAccountForm | None = None, status: int = 200,
          error: str = "") -> HttpResponse:
    user = request.user
    return render(request, "workspace/invitations/accept.html", {
        "invitation": invitation, "store": invitation.tenant,
        "inviter": invitation.invited_by.get_username() if invitation.invited_by else "",
        "signed_in": user.is_authenticated, "is_invitee": user.is_authenticated and is_invitee(user, invitation),
        "form": form or NewAccountForm(email=invitation.email), "error": error,
        "login_url": f"{reverse('workspace:login')}?next={request.path}",
    }, status=status)


def invite(request: HttpRequest, token: str) -> HttpResponse:
    """/app/invite/<token>/: GET shows the invitation; POST accepts it (see the module's docstring)."""
    invitation = _find(token)
    if invitation is None:
        return _unavailable(request, "unknown")
    state = invitation.state(clock.now())
    if state != "pending":
        return _unavailable(request, state)
    if request.method != "POST":
        return _page(request, invitation)
    user = request.user
    if user.is_authenticated:
        if not is_invitee(user, invitation):
            return _page(request, invitation, status=403,
                         error=f"You are signed in as {user.get_username()}, but this invitation is for "
                               f"{invitation.email}. Sign out, then open the link again and sign in as "
                               f"{invitation.email}.")
        return _accepted(request, invitation, user)
    # Signed out: a new person makes their account here; an existing one signs in first.
    form = NewAccountForm(request.POST, email=invitation.email)
    if not form.is_valid():
        return _page(request, invitation, form=form, status=400)
    if _user_with_email(invitation.email) is not None:
        return _page(request, invitation, form=NewAccountForm(email=invitation.email), status=409,
                     error=f"An account for {invitation.email} exists already: sign in with it to join "
                           f"{invitation.tenant.name}.")
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=invitation.email, email=invitation.email,
                                                        password=form.cleaned_data["password1"])
            invitation_accept(invitation=invitation, user=user)
    except IntegrityError:  # the same address made an account a moment ago, in another request
        return _page(request, invitation, status=409, error=f"An account for {invitation.email} exists already: "
                                                            f"sign in with it to join {invitation.tenant.name}.")
    except ServiceError as exc:
        return _page(request, invitation, status=409, error=exc.message)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, f"Welcome to {invitation.tenant.name}: you are in its team as {invitation.role}.")
    return redirect("workspace:home", tenant=invitation.tenant.slug)


def _accepted(request: HttpRequest, invitation: Invitation, user) -> HttpResponse:
    try:
        invitation_accept(invitation=invitation, user=user)
    except ServiceError as exc:
        return _page(request, invitation, status=409, error=exc.message)
    messages.success(request, f"Welcome to {invitation.tenant.name}: you are in its team as {invitation.role}.")
    return redirect("workspace:home", tenant=invitation.tenant.slug)
