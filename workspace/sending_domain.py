"""Settings → Sending domain: the store's own from-domain, its ESP account, the SPF, DKIM and DMARC records to
publish and "Check now" (lifecycle/sending_domains.py). Everyone in the store reads it; an owner changes it.
The ESP's credentials are write-only: the page shows whether they are set, never what they are."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path

from lifecycle.errors import ServiceError
from lifecycle.models import Membership, SendingDomain, Tenant
from lifecycle.sending_domains import (
    ESPS,
    on_domain,
    records,
    sending_domain_check,
    sending_domain_for,
    sending_domain_remove,
    sending_domain_save,
)
from workspace.access import workspace_view

from .program_forms import apply_service_error, changed_by

OWNER = Membership.Role.OWNER
# Every credential an ESP of the list may need, as one form field each (the page shows those of the chosen ESP).
CREDENTIAL_FIELDS = sorted({key: label for esp in ESPS.values() for key, label in esp.credentials}.items())


class DomainForm(forms.Form):
    domain = forms.CharField(label="Domain", max_length=253,
                             help_text="The part after @ in your sender address, such as acme.com or mail.acme.com.")
    esp = forms.ChoiceField(label="Send through", required=False,
                            choices=[("", "This platform's email service"), *[(k, e.label) for k, e in ESPS.items()]],
                            help_text="Your own account at an email service: its reputation is yours alone.")
    dkim_selector = forms.CharField(label="DKIM selector", max_length=63, initial="lc",
                                    help_text="The name your ESP gives the DKIM record, before ._domainkey.")
    dkim_value = forms.CharField(label="DKIM record", required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                 help_text="Paste what your ESP shows: a TXT value (v=DKIM1; k=rsa; p=…) or the host "
                                           "name a CNAME points to.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, label in CREDENTIAL_FIELDS:
            self.fields[f"credential_{key}"] = forms.CharField(
                label=label, required=False, max_length=500,
                widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
                help_text="Blank keeps the one saved. Stored encrypted; never shown again.")

    def credentials(self) -> dict[str, str] | None:
        """What the owner typed for the chosen ESP, or None (keep the saved ones) when they typed nothing."""
        esp = self.cleaned_data.get("esp")
        if not esp:
            return {}
        typed = {key: self.cleaned_data.get(f"credential_{key}", "").strip() for key, _ in ESPS[esp].credentials}
        return typed if any(typed.values()) else None


def _page(request: HttpRequest, tenant: Tenant, *, form: DomainForm | None = None, status: int = 200,
          check=None) -> HttpResponse:
    row = sending_domain_for(tenant)
    if form is None:
        initial = ({"domain": row.domain, "esp": row.esp, "dkim_selector": row.dkim_selector,
                    "dkim_value": row.dkim_value} if row else {})
        form = DomainForm(initial=initial)
    results = (check.results if check and check.results else (row.check_results if row else {})) or {}
    rows = [{"record": r, "result": results.get(r.key)} for r in records(row, report_to=tenant.reply_to)] if row else []
    sender_off_domain = bool(row and tenant.sender_email and not on_domain(tenant.sender_email, row.domain))
    return render(request, "workspace/settings/domain.html", {
        "section": "domain", "form": form, "domain": row, "records": rows, "check": check,
        "esp_label": ESPS[row.esp].label if row and row.esp in ESPS else "this platform's email service",
        "credential_keys": {k: [key for key, _ in e.credentials] for k, e in ESPS.items()},
        "sender_off_domain": sender_off_domain, "verified": row is not None and row.state == SendingDomain.State.VERIFIED,
    }, status=status)


@workspace_view(write_role=OWNER)
def domain(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method != "POST":
        return _page(request, tenant)
    form = DomainForm(request.POST)
    if not form.is_valid():
        return _page(request, tenant, form=form, status=400)
    data = form.cleaned_data
    try:
        changed = sending_domain_save(
            tenant=tenant, credentials=form.credentials(), by=changed_by(request),
            values={"domain": data["domain"], "esp": data["esp"], "dkim_selector": data["dkim_selector"].strip().lower(),
                    "dkim_value": data["dkim_value"].strip()})
    except ServiceError as exc:
        if exc.fields and "credentials" in exc.fields and data.get("esp"):
            exc.fields = {f"credential_{ESPS[data['esp']].credentials[0][0]}": ["required"]}
        apply_service_error(form, exc)
        return _page(request, tenant, form=form, status=400)
    messages.success(request, "Sending domain saved: publish the records below, then check them."
                     if changed else "Nothing changed.")
    return redirect("workspace:settings-domain", tenant=tenant.slug)


@workspace_view(write_role=OWNER)
def domain_check(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Check now: a POST (it writes the verdict to the audit log); a GET shows the page."""
    if request.method != "POST":
        return redirect("workspace:settings-domain", tenant=tenant.slug)
    try:
        outcome = sending_domain_check(tenant=tenant, by=changed_by(request))
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("workspace:settings-domain", tenant=tenant.slug)
    return _page(request, tenant, check=outcome)


@workspace_view(write_role=OWNER)
def domain_remove(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method == "POST":
        if sending_domain_remove(tenant=tenant, by=changed_by(request)):
            messages.success(request, "The sending domain and its ESP credentials are removed: email goes through "
                                      "this platform's service again.")
        else:
            messages.info(request, "There was no sending domain to remove.")
    return redirect("workspace:settings-domain", tenant=tenant.slug)


urlpatterns = [
    path("settings/sending-domain/", domain, name="settings-domain"),
    path("settings/sending-domain/check/", domain_check, name="settings-domain-check"),
    path("settings/sending-domain/remove/", domain_remove, name="settings-domain-remove"),
]
