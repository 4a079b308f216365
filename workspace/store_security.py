"""Settings → Security: whether the store requires two-factor sign-in of every member, and who has it.

Everyone in the store reads it; only an owner changes it, and only once they sign in with two-factor
themselves (else turning it on would send them straight to the setup page). With the rule on, a member
without an authenticator is sent to /app/account/two-factor/ before any page of this store
(workspace/access.py); API keys are not people and are unaffected.
"""

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path

from lifecycle import clock
from lifecycle.errors import ServiceError
from lifecycle.models import Membership, Tenant
from lifecycle.timeline import event_append
from lifecycle.two_factor import has_two_factor, members_without_two_factor
from workspace.access import workspace_view

OWNER = Membership.Role.OWNER


def two_factor_requirement_set(*, tenant: Tenant, required: bool, by) -> bool:
    """Turn the store's two-factor rule on or off. False when it already was so.

    Refused (team.two_factor_first) when `by` turns it on without an authenticator of their own.
    """
    if required and not has_two_factor(by):
        raise ServiceError("team.two_factor_first", "Set up two-factor sign-in for yourself first (Your account → "
                                                    "Two-factor sign-in), then require it of the team.")
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if locked.require_two_factor == required:
            return False
        before = locked.require_two_factor
        locked.require_two_factor = required
        locked.save(update_fields=["require_two_factor"])
        event_append(tenant=locked, type="store.two_factor_required_changed", occurred_at=clock.now(),
                     data={"changes": {"require_two_factor": [before, required]}, "by": by.get_username()})
    tenant.require_two_factor = required
    return True


class RequirementForm(forms.Form):
    require_two_factor = forms.BooleanField(label="Require two-factor sign-in for every member", required=False)


@workspace_view(write_role=OWNER)
def security(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    error, status = "", 200
    if request.method == "POST":
        form = RequirementForm(request.POST)
        form.is_valid()  # a checkbox: absent is off, anything else on
        required = bool(form.cleaned_data.get("require_two_factor"))
        try:
            changed = two_factor_requirement_set(tenant=tenant, required=required, by=request.user)
        except ServiceError as exc:
            error, status = exc.message, 400
        else:
            if not changed:
                messages.info(request, "Nothing changed.")
            elif required:
                messages.success(request, "Two-factor sign-in is now required: members without it are asked to "
                                          "set it up before they open the store.")
            else:
                messages.success(request, "Two-factor sign-in is no longer required of every member.")
            return redirect("workspace:settings-security", tenant=tenant.slug)
    without = members_without_two_factor(tenant)
    members = [(m, m.user_id not in without) for m in
               Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__username")]
    return render(request, "workspace/settings/security.html", {
        "section": "security", "members": members, "error": error,
        "form": RequirementForm(initial={"require_two_factor": tenant.require_two_factor}),
    }, status=status)


urlpatterns = [
    path("settings/security/", security, name="settings-security"),
]
