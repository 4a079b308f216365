"""Segments in the workspace: the list with live counts, the built-ins a store installs with a click,
the editor (rules as in a journey's yes/no split), a sample of who is in it, a CSV export, delete.

Every write goes through journeys.segments; a segment of another store is a 404 (segment_get)."""

import csv
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from pydantic import ValidationError

from journeys.conditions import rule_words
from journeys.models import Segment
from journeys.segments import (
    BUILTINS,
    SegmentIn,
    builtin_definition,
    segment_count_and_sample,
    segment_csv_rows,
    segment_delete,
    segment_get,
    segment_save,
    segment_users,
)
from lifecycle.errors import NotFound, ServiceError
from lifecycle.models import Membership, Tenant
from workspace.access import workspace_view

from .rule_fields import SEGMENT_FIELDS, rule_form_fields, rule_from_data, rule_initial

RULE_ROWS = 5


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(max_length=500, required=False)
    match = forms.ChoiceField(choices=[("all", "all of these"), ("any", "any of these")], label="Customers matching")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for i in range(RULE_ROWS):
            self.fields.update(rule_form_fields(f"rule{i}_", fields=SEGMENT_FIELDS))
        self.rows = [[self[name] for name in rule_form_fields(f"rule{i}_", fields=SEGMENT_FIELDS)]
                     for i in range(RULE_ROWS)]

    @classmethod
    def initial_for(cls, segment: Segment) -> dict[str, Any]:
        initial = {"name": segment.name, "description": segment.description, "match": segment.match}
        for i, rule in enumerate(segment.rules[:RULE_ROWS]):
            initial.update(rule_initial(rule, f"rule{i}_"))
        return initial

    def clean(self):
        data = super().clean()
        rules = [rule for i in range(RULE_ROWS) if (rule := rule_from_data(data, f"rule{i}_", self)) is not None]
        if not rules and not self.errors:
            self.add_error("rule0_field", "add at least one rule: what the customers have in common")
        if self.errors:
            return data
        try:
            data["segment"] = SegmentIn(name=data["name"], description=data.get("description") or "",
                                        match=data["match"], rules=rules)
        except ValidationError as exc:
            for error in exc.errors():
                self.add_error(None, error["msg"].removeprefix("Value error, "))
        return data


def _page(request: HttpRequest, tenant: Tenant, segment: Segment | None, form: SegmentForm,
          status: int = 200) -> HttpResponse:
    count, sample = segment_count_and_sample(segment=segment) if segment is not None else (None, [])
    return render(request, "workspace/segments/detail.html", {
        "segment": segment, "form": form, "count": count, "sample": sample,
        "rules": [rule_words(r) for r in segment.rules] if segment else [],
        "used_by": segment_users(tenant=tenant, segment=segment) if segment else [],
        "can_export": request.role in (Membership.Role.OWNER, Membership.Role.MARKETER),
    }, status=status)


@workspace_view()
def segment_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    rows = []
    for segment in Segment.objects.for_tenant(tenant).order_by("name"):
        count, _ = segment_count_and_sample(segment=segment, sample=0)
        rows.append({"segment": segment, "count": count,
                     "rules": " and ".join(rule_words(r) for r in segment.rules) if segment.match == "all"
                     else " or ".join(rule_words(r) for r in segment.rules)})
    installed = set(Segment.objects.for_tenant(tenant).exclude(builtin="").values_list("builtin", flat=True))
    builtins = [{"key": key, "name": b["name"].replace(": {feature}", ""), "description": b["description"]
                 .replace("{feature}", "a feature"), "needs_feature": "{feature}" in str(b),
                 "installed": key in installed and "{feature}" not in str(b)} for key, b in BUILTINS.items()]
    return render(request, "workspace/segments/list.html", {"rows": rows, "builtins": builtins})


@workspace_view()
def segment_builtin(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method != "POST":
        return redirect("workspace:segments", tenant=tenant.slug)
    key = request.POST.get("key", "")
    try:
        segment = segment_save(tenant=tenant, data=builtin_definition(key, feature=request.POST.get("feature", "")),
                               builtin=key)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("workspace:segments", tenant=tenant.slug)
    messages.success(request, f"Added the segment “{segment.name}”.")
    return redirect("workspace:segment", tenant=tenant.slug, segment_id=segment.pk)


@workspace_view()
def segment_new(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method != "POST":
        return _page(request, tenant, None, SegmentForm(initial={"match": "all"}))
    form = SegmentForm(request.POST)
    if not form.is_valid():
        return _page(request, tenant, None, form, status=400)
    try:
        segment = segment_save(tenant=tenant, data=form.cleaned_data["segment"])
    except ServiceError as exc:
        form.add_error("name", exc.message)
        return _page(request, tenant, None, form, status=409 if exc.code == "segments.name_taken" else 400)
    messages.success(request, f"Saved the segment “{segment.name}”.")
    return redirect("workspace:segment", tenant=tenant.slug, segment_id=segment.pk)


def _segment(tenant: Tenant, segment_id: int) -> Segment:
    try:
        return segment_get(tenant=tenant, segment_id=segment_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@workspace_view()
def segment_detail(request: HttpRequest, tenant: Tenant, segment_id: int) -> HttpResponse:
    segment = _segment(tenant, segment_id)
    if request.method != "POST":
        return _page(request, tenant, segment, SegmentForm(initial=SegmentForm.initial_for(segment)))
    form = SegmentForm(request.POST)
    if not form.is_valid():
        return _page(request, tenant, segment, form, status=400)
    try:
        segment = segment_save(tenant=tenant, data=form.cleaned_data["segment"], segment_id=segment.pk)
    except ServiceError as exc:
        form.add_error("name", exc.message)
        return _page(request, tenant, segment, form, status=409)
    messages.success(request, f"Saved the segment “{segment.name}”.")
    return redirect("workspace:segment", tenant=tenant.slug, segment_id=segment.pk)


class _Echo:
    def write(self, value: str) -> str:
        return value


# The export lists people: marketers and owners, as the customers' own export.
@workspace_view(read_role=Membership.Role.MARKETER)
def segment_export(request: HttpRequest, tenant: Tenant, segment_id: int) -> HttpResponse:
    segment = _segment(tenant, segment_id)
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in segment_csv_rows(segment=segment)),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="segment-{segment.pk}.csv"'
    return response


@workspace_view()
def segment_remove(request: HttpRequest, tenant: Tenant, segment_id: int) -> HttpResponse:
    segment = _segment(tenant, segment_id)
    if request.method != "POST":
        return redirect("workspace:segment", tenant=tenant.slug, segment_id=segment.pk)
    try:
        segment_delete(tenant=tenant, segment_id=segment.pk)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect(reverse("workspace:segment", kwargs={"tenant": tenant.slug, "segment_id": segment.pk}))
    messages.success(request, f"Deleted the segment “{segment.name}”.")
    return redirect("workspace:segments", tenant=tenant.slug)


urlpatterns = [
    path("segments/", segment_list, name="segments"),
    path("segments/new/", segment_new, name="segment_new"),
    path("segments/builtin/", segment_builtin, name="segment_builtin"),
    path("segments/<int:segment_id>/", segment_detail, name="segment"),
    path("segments/<int:segment_id>/export.csv", segment_export, name="segment_export"),
    path("segments/<int:segment_id>/delete/", segment_remove, name="segment_delete"),
]
