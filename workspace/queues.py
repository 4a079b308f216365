"""The store's two review queues: referrals held by a fraud rule, and product reviews to moderate.

Everyone in the store reads them; a marketer or an owner decides. Each decision is a POST (with
the CSRF token) on one object of this store, looked up before the role check, so another store's
id is a 404 for everyone. The views parse and call the feature apps' services
(`referrals.services.referral_decide`, `feedback.configure.review_moderate_by_store`), which
write the state and its history in one transaction.
"""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse

from feedback.configure import review_moderate_by_store
from feedback.models import Review
from lifecycle.errors import ServiceError
from lifecycle.models import Membership, Tenant
from referrals.models import Program as ReferralProgram
from referrals.models import Referral
from referrals.services import referral_decide
from workspace.access import workspace_view
from workspace.customers import object_action, refuse_write

MARKETER = Membership.Role.MARKETER
# Rows a queue page shows: a store with more waiting works through them oldest first.
QUEUE_PAGE = 100
RECENT_DECISIONS = 20


def _by(request: HttpRequest) -> str:
    return request.user.get_username()


# --- referrals held for review ---------------------------------------------------------------


class DecideForm(forms.Form):
    action = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")],
                               error_messages={"required": "Choose approve or reject.",
                                               "invalid_choice": "Choose approve or reject."})
    reason = forms.CharField(required=False, max_length=250, strip=True,
                             error_messages={"max_length": "Keep the reason under 250 characters."})


def _referral_queue(request: HttpRequest, tenant: Tenant, *, status: int = 200, error: str = "",
                    error_for: int | None = None) -> HttpResponse:
    referrals = Referral.objects.for_tenant(tenant).select_related("code", "advocate", "friend", "order")
    waiting = list(referrals.filter(state=Referral.State.REVIEW).order_by("review_deadline", "pk")[:QUEUE_PAGE])
    waiting_count = referrals.filter(state=Referral.State.REVIEW).count()
    decided = list(referrals.exclude(decided_at=None).order_by("-decided_at", "-pk")[:RECENT_DECISIONS])
    return render(request, "workspace/queues/referrals.html", {
        "section": "referral-queue", "waiting": waiting, "waiting_count": waiting_count, "decided": decided,
        "program": ReferralProgram.objects.for_tenant(tenant).first(), "error": error, "error_for": error_for,
    }, status=status)


@workspace_view(write_role=MARKETER)
def referral_queue(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method == "POST":
        return redirect("workspace:referral-queue", tenant=tenant.slug)
    return _referral_queue(request, tenant)


@object_action(write_role=MARKETER)
def referral_decide_view(request: HttpRequest, tenant: Tenant, referral_id: int) -> HttpResponse:
    referral = get_object_or_404(Referral.objects.for_tenant(tenant).select_related("code"), pk=referral_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    if request.method != "POST":
        return redirect("workspace:referral-queue", tenant=tenant.slug)
    form = DecideForm(request.POST)
    if not form.is_valid():
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return _referral_queue(request, tenant, status=400, error=error, error_for=referral.pk)
    approve = form.cleaned_data["action"] == "approve"
    label = f"Referral {referral.code.code} → order {referral.order_id}"
    if referral_decide(referral_id=referral.pk, tenant=tenant, approve=approve, by=_by(request),
                       reason=form.cleaned_data["reason"]):
        messages.success(request, f"{label}: approved, its rewards follow after the release date."
                         if approve else f"{label}: rejected, nobody is rewarded for it.")
    else:
        referral.refresh_from_db(fields=["state"])
        messages.info(request, f"{label} was no longer waiting for review (it is {referral.state}): nothing changed.")
    return redirect("workspace:referral-queue", tenant=tenant.slug)


# --- product reviews ------------------------------------------------------------------------


class ModerateForm(forms.Form):
    ACTIONS = [("approve", "Approve"), ("reject", "Reject"), ("reply", "Reply")]
    action = forms.ChoiceField(choices=ACTIONS, error_messages={
        "required": "Choose approve, reject or reply.", "invalid_choice": "Choose approve, reject or reply."})
    reason = forms.CharField(required=False, max_length=300, strip=True,
                             error_messages={"max_length": "Keep the reason under 300 characters."})
    reply = forms.CharField(required=False, max_length=5000, strip=True, widget=forms.Textarea(attrs={"rows": 2}),
                            error_messages={"max_length": "Keep the reply under 5,000 characters."})

    def clean(self):
        data = super().clean()
        if data.get("action") == "reject" and not data.get("reason"):
            self.add_error("reason", "Say why the review is rejected: the reason is kept with it.")
        return data


REVIEW_FILTERS = [("pending", "Waiting"), ("approved", "Approved"), ("rejected", "Rejected")]


def _review_queue(request: HttpRequest, tenant: Tenant, *, shown: str = "pending", status: int = 200,
                  error: str = "", error_for: int | None = None, form_values: dict | None = None) -> HttpResponse:
    reviews = (Review.objects.for_tenant(tenant).select_related("product", "order", "customer")
               .filter(status=shown).order_by("created_at", "pk") if shown == "pending" else
               Review.objects.for_tenant(tenant).select_related("product", "order", "customer")
               .filter(status=shown).order_by("-moderated_at", "-pk"))
    counts = {s: Review.objects.for_tenant(tenant).filter(status=s).count() for s, _ in REVIEW_FILTERS}
    return render(request, "workspace/queues/reviews.html", {
        "section": "review-queue", "reviews": list(reviews[:QUEUE_PAGE]), "shown": shown,
        "filters": [(s, label, counts[s]) for s, label in REVIEW_FILTERS], "error": error, "error_for": error_for,
        "form_values": form_values or {},
    }, status=status)


@workspace_view(write_role=MARKETER)
def review_queue(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method == "POST":
        return redirect("workspace:review-queue", tenant=tenant.slug)
    shown = request.GET.get("status") or "pending"
    if shown not in dict(REVIEW_FILTERS):
        return _review_queue(request, tenant, status=400,
                             error="Show waiting, approved or rejected reviews: “status” is one of pending, "
                                   "approved, rejected.")
    return _review_queue(request, tenant, shown=shown)


@object_action(write_role=MARKETER)
def review_moderate_view(request: HttpRequest, tenant: Tenant, review_id: int) -> HttpResponse:
    review = get_object_or_404(Review.objects.for_tenant(tenant).select_related("product"), pk=review_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    back = reverse("workspace:review-queue", kwargs={"tenant": tenant.slug})
    if review.status != Review.Status.PENDING:
        back += f"?status={review.status}"
    if request.method != "POST":
        return redirect(back)
    form = ModerateForm(request.POST)
    if not form.is_valid():
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return _review_queue(request, tenant, shown=review.status, status=400, error=error, error_for=review.pk,
                             form_values={"reason": request.POST.get("reason", ""),
                                          "reply": request.POST.get("reply", "")})
    data = form.cleaned_data
    # The reply box is sent with every action: a blank one with approve or reject leaves the reply alone.
    reply = data["reply"] if data["action"] == "reply" or data["reply"] else None
    try:
        review_moderate_by_store(tenant=tenant, review=review, action=data["action"], reason=data["reason"],
                                 reply=reply, by=_by(request))
    except ServiceError as exc:
        return _review_queue(request, tenant, shown=review.status, status=400, error=exc.message, error_for=review.pk)
    done = {"approve": "approved: it shows on the product's page", "reject": "rejected",
            "reply": "reply saved" if reply else "reply removed"}[data["action"]]
    messages.success(request, f"Review of {review.product.title or review.product.external_id}: {done}.")
    return redirect(back)


urlpatterns = [
    path("referrals/review/", referral_queue, name="referral-queue"),
    path("referrals/review/<int:referral_id>/decide/", referral_decide_view, name="referral-decide"),
    path("reviews/", review_queue, name="review-queue"),
    path("reviews/<int:review_id>/moderate/", review_moderate_view, name="review-moderate"),
]
