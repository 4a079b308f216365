"""A journey's A/B tests: each split's (and each email's versions') arms with their funnel, conversion and revenue and their
intervals, the stopping rule's verdict ("B wins" or "not yet, N more customers needed"), the test's
settings (goal, window, stopping rule, auto-promote) and one button per arm to promote it.

Everyone in the store reads; a marketer or an owner changes settings and promotes (workspace_view's
write role). The journey and the split are looked up in the tenant the URL names before any input is
read, so another store's journey is a 404. Writes go through journeys.abtests, which audits them.
"""

import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse

from journeys.abtests import (
    CONFIDENCES,
    MAX_SAMPLE,
    MAX_WINDOW,
    MIN_SAMPLE,
    MIN_WINDOW,
    AbTestError,
    SplitReport,
    abtest_configure,
    abtest_promote,
    journey_tests,
    template_version_add,
    template_version_remove,
)
from journeys.builder_checks import EMAIL_KINDS
from journeys.models import VERSION_LABELS, AbTest, Journey, Step
from lifecycle import clock
from lifecycle.models import Tenant
from workspace.access import workspace_view


class AbTestForm(forms.Form):
    goal = forms.ChoiceField(choices=AbTest.Goal.choices, label="A conversion is")
    window_days = forms.IntegerField(min_value=MIN_WINDOW.days, max_value=MAX_WINDOW.days, label="within (days)")
    rule = forms.ChoiceField(choices=AbTest.Rule.choices, label="Stop at", widget=forms.RadioSelect)
    sample_size = forms.IntegerField(min_value=MIN_SAMPLE, max_value=MAX_SAMPLE, label="Customers per arm")
    min_sample = forms.IntegerField(min_value=MIN_SAMPLE, max_value=MAX_SAMPLE, label="At least, per arm")
    confidence = forms.TypedChoiceField(choices=[(c, f"{c}%") for c in CONFIDENCES], coerce=int,
                                        label="Confidence")
    auto_promote = forms.BooleanField(required=False, label="Promote the winner by itself once the rule is met")

    @classmethod
    def of(cls, test: AbTest, prefix: str, data=None) -> "AbTestForm":
        return cls(data, prefix=prefix, initial={
            "goal": test.goal, "window_days": test.window.days, "rule": test.rule, "sample_size": test.sample_size,
            "min_sample": test.min_sample, "confidence": test.confidence, "auto_promote": test.auto_promote})

    def values(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {"goal": data["goal"], "window": dt.timedelta(days=data["window_days"]), "rule": data["rule"],
                "sample_size": data["sample_size"], "min_sample": data["min_sample"],
                "confidence": data["confidence"], "auto_promote": data["auto_promote"]}


def _journey(tenant: Tenant, journey_id: int) -> Journey:
    return get_object_or_404(Journey.objects.for_tenant(tenant), pk=journey_id)


def _split(tenant: Tenant, journey: Journey, step_id: int) -> Step:
    """The tested step: an A/B split or an email step (a content test)."""
    return get_object_or_404(Step.objects.for_tenant(tenant), pk=step_id, journey=journey,
                             kind__in=[Step.Kind.AB_SPLIT, *EMAIL_KINDS])


class VersionForm(forms.Form):
    subject = forms.CharField(required=False, max_length=300, help_text="Empty: version A's subject.")
    preheader = forms.CharField(required=False, max_length=300, help_text="Empty: version A's preheader.")
    body = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}),
                           help_text="Empty: version A's body. Change the call to action here to test it.")


def _url(tenant: Tenant, journey: Journey, split: Step | None = None) -> str:
    url = reverse("workspace:journey_tests", kwargs={"tenant": tenant.slug, "journey_id": journey.pk})
    return url + (f"#test-{split.pk}" if split else "")


def arm_chart(report: SplitReport) -> dict:
    """The arms' rates with their intervals, for charts.js's interval chart (in percent)."""
    shown = [arm for arm in report.arms if arm.enrolled]
    winner = report.decision.winner
    return {"type": "interval", "unit": "percent", "axis": "Conversion, % of the arm's customers", "what": "rate",
            "zero": False, "labels": [f"{arm.label} (step {arm.step.position})" if report.split.kind == Step.Kind.AB_SPLIT
                       else f"{arm.label} (version)" for arm in shown],
            "estimates": [round(100 * arm.rate, 2) for arm in shown],
            "intervals": [[round(100 * arm.rate_low, 2), round(100 * arm.rate_high, 2)] for arm in shown],
            "enough": [winner is None or arm.label == winner for arm in shown]}


def _page(request: HttpRequest, tenant: Tenant, journey: Journey, *, forms_by_split: dict[int, AbTestForm] | None = None,
          version_forms: dict[int, VersionForm] | None = None, status: int = 200) -> HttpResponse:
    reports = journey_tests(tenant, journey, clock.now())
    forms_by_split, version_forms = forms_by_split or {}, version_forms or {}
    items = [{"report": r, "form": forms_by_split.get(r.split.pk) or AbTestForm.of(r.test, f"t{r.split.pk}"),
              "versions": r.split.template.versions if r.split.kind != Step.Kind.AB_SPLIT else []}
             for r in reports]
    emails = [{"step": s, "form": version_forms.get(s.pk) or VersionForm(prefix=f"v{s.pk}"),
               "versions": list(zip(VERSION_LABELS[1:], s.template.versions, strict=False))}
              for s in Step.objects.for_tenant(tenant).filter(journey=journey, kind__in=EMAIL_KINDS,
                                                              template__isnull=False)
              .select_related("template").order_by("position")]
    charts = {f"chart-arms-{r.split.pk}": arm_chart(r) for r in reports}
    return render(request, "workspace/journeys/abtests.html",
                  {"journey": journey, "items": items, "emails": emails, "charts": charts,
                   "can_write": request.can_write}, status=status)


@workspace_view()
def journey_tests_page(request: HttpRequest, tenant: Tenant, journey_id: int) -> HttpResponse:
    return _page(request, tenant, _journey(tenant, journey_id))


@workspace_view()
def journey_test_settings(request: HttpRequest, tenant: Tenant, journey_id: int, step_id: int) -> HttpResponse:
    journey = _journey(tenant, journey_id)
    split = _split(tenant, journey, step_id)
    if request.method != "POST":
        return redirect(_url(tenant, journey, split))
    form = AbTestForm(request.POST, prefix=f"t{split.pk}")
    if not form.is_valid():
        messages.error(request, "The test's settings were not saved: fix what is marked below.")
        return _page(request, tenant, journey, forms_by_split={split.pk: form}, status=400)
    try:
        abtest_configure(tenant=tenant, journey_id=journey.pk, step_id=split.pk, values=form.values(),
                         by=request.user.get_username())
    except AbTestError as exc:
        for field, problems in exc.fields.items():
            for problem in problems:
                form.add_error(field if field in form.fields else None, problem)
        messages.error(request, exc.message)
        return _page(request, tenant, journey, forms_by_split={split.pk: form}, status=exc.status)
    messages.success(request, f"The test at step {split.position} is saved.")
    return redirect(_url(tenant, journey, split))


@workspace_view()
def journey_test_promote(request: HttpRequest, tenant: Tenant, journey_id: int, step_id: int) -> HttpResponse:
    journey = _journey(tenant, journey_id)
    split = _split(tenant, journey, step_id)
    if request.method != "POST":
        return redirect(_url(tenant, journey, split))
    raw = request.POST.get("arm", "").strip()
    if not raw:
        messages.error(request, "Choose which arm to promote: press the button under the arm.")
        return _page(request, tenant, journey, status=400)
    try:
        abtest_promote(tenant=tenant, journey_id=journey.pk, step_id=split.pk, arm=raw[:20],
                       by=request.user.get_username())
    except AbTestError as exc:
        messages.error(request, exc.message)
        return _page(request, tenant, journey, status=exc.status)
    if split.kind == Step.Kind.AB_SPLIT:
        arm = Step.objects.for_tenant(tenant).get(pk=int(raw))
        messages.success(request, f"Promoted: everyone who reaches step {split.position} from now on goes to step "
                                  f"{arm.position} ({arm.name or arm.kind}); customers already in another arm "
                                  "finish it.")
    else:
        messages.success(request, f"Promoted: everyone who reaches step {split.position} from now on gets version "
                                  f"{raw} of its email.")
    return redirect(_url(tenant, journey, split))


@workspace_view()
def journey_step_versions(request: HttpRequest, tenant: Tenant, journey_id: int, step_id: int) -> HttpResponse:
    """Add a version of an email step's content (a subject, content or call-to-action test), or remove one."""
    journey = _journey(tenant, journey_id)
    step = get_object_or_404(Step.objects.for_tenant(tenant), pk=step_id, journey=journey, kind__in=EMAIL_KINDS)
    if request.method != "POST":
        return redirect(_url(tenant, journey))
    by = request.user.get_username()
    form = VersionForm(request.POST, prefix=f"v{step.pk}")
    try:
        if request.POST.get("remove"):
            template_version_remove(tenant=tenant, journey_id=journey.pk, step_id=step.pk,
                                    label=request.POST["remove"][:1], by=by)
            messages.success(request, f"Version {request.POST['remove'][:1]} of step {step.position} is removed; "
                                      "the test starts again.")
            return redirect(_url(tenant, journey, step))
        if not form.is_valid():
            raise AbTestError("journeys.test_invalid", "The new version was not added: fix what is marked below.")
        label = template_version_add(tenant=tenant, journey_id=journey.pk, step_id=step.pk,
                                     content=form.cleaned_data, by=by)
    except AbTestError as exc:
        for field, problems in exc.fields.items():
            for problem in problems:
                form.add_error(field if field in form.fields else None, problem)
        messages.error(request, exc.message)
        return _page(request, tenant, journey, version_forms={step.pk: form}, status=exc.status)
    messages.success(request, f"Version {label} of step {step.position} is added: from now on each customer gets "
                              "one version, and the test counts the emails sent from now.")
    return redirect(_url(tenant, journey, step))


urlpatterns = [
    path("journeys/<int:journey_id>/tests/", journey_tests_page, name="journey_tests"),
    path("journeys/<int:journey_id>/tests/<int:step_id>/", journey_test_settings, name="journey_test_settings"),
    path("journeys/<int:journey_id>/tests/<int:step_id>/promote/", journey_test_promote, name="journey_test_promote"),
    path("journeys/<int:journey_id>/tests/<int:step_id>/versions/", journey_step_versions,
         name="journey_step_versions"),
]
