"""The journey pages of the marketer's workspace: the list, the library gallery, and one builder
page per journey (trigger and filters in words, the steps as a timeline, each email beside a
live preview, send a test, validate and activate).

Views parse input and call journeys.builder (writes), journeys.builder_checks (words and
problems) and journeys.preview (rendering, test sends). Every lookup starts from the tenant
the URL names (workspace.access), before any input is read, so another store's
journey or step is a 404 whatever the request carries.
"""

import json

from django.conf import settings
from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.text import slugify

from feedback.models import Survey
from journeys import builder, rollups
from journeys.builder_checks import (
    EMAIL_KINDS,
    HORIZON,
    KIND_WORDS,
    journey_problems,
    step_does,
    step_title,
    timeline,
    trigger_sentence,
    wait_words,
)
from journeys.io import journey_export, library_install, library_keys, library_load
from journeys.models import EmailTemplate, Enrollment, Journey, Segment, Step, WebhookAttempt, WebhookCall
from journeys.paths import paths, steps_reached, unreached_steps
from journeys.preview import PreviewError, TestNotSent, email_preview, email_send_test, recent_customers
from journeys.step_refs import signer_name
from lifecycle.models import Membership, Tenant
from loyalty.models import Reward
from workspace.access import workspace_view
from workspace.builder_forms import (
    AddStepForm,
    ContentForm,
    ImportForm,
    NewJourneyForm,
    SettingsForm,
    StepForm,
)

# Counts on the list stop here: a count past it reads "10,000+", so the page costs the same for a
# journey with a million enrollments (each count is an index range scan of at most this many rows).
COUNT_CAP = 10_000
# Buttons under the email body that insert a placeholder at the cursor: what a template may name.
PLACEHOLDERS = [
    ("first name", "{{ first_name }}"), ("order number", "{{ order.number }}"), ("order total", "{{ order.total }}"),
    ("products", "{{ order.item_titles }}"),
    ("a link per product", '{% for item in order.items %}<p><a href="{{ item.url }}">{{ item.title }}</a></p>'
                           "{% endfor %}"),
    ("store name", "{{ store.name }}"), ("points", "{{ points_balance }}"), ("loyalty page", "{{ loyalty_url }}"),
]
REFERRAL_PLACEHOLDERS = [("referral link", "{{ referral_url }}"), ("referral code", "{{ referral_code }}"),
                         ("referral offer", "{{ referral_offer }}")]
# What a discount-code step leaves for the emails after it, and what a check-in or community email adds.
KIND_PLACEHOLDERS = {Step.Kind.EMAIL: [("discount code", "{{ discount_code }}")],
                     Step.Kind.CHECK_IN: [("signer's name", "{{ signer.name }}"), ("discount code", "{{ discount_code }}")],
                     Step.Kind.COMMUNITY_INVITE: [("community link", "{{ community_url }}")]}
# A webhook step's latest calls shown under it in the builder, each with its attempts.
STEP_CALLS = 10
# The builder page holds three forms; prefixes keep their field names and ids apart.
SETTINGS_PREFIX, ADD_PREFIX = "journey", "add"
ENROLLED_STATES = (Enrollment.State.ACTIVE, Enrollment.State.COMPLETED, Enrollment.State.EXITED)


def _journey(tenant: Tenant, journey_id: int) -> Journey:
    return get_object_or_404(Journey.objects.for_tenant(tenant), pk=journey_id)


def _step(tenant: Tenant, journey: Journey, step_id: int) -> Step:
    return get_object_or_404(Step.objects.for_tenant(tenant).select_related("template"), pk=step_id, journey=journey)


def _builder_url(tenant: Tenant, journey: Journey | int, step: Step | int | None = None, anchor: str = "") -> str:
    url = reverse("workspace:journey", kwargs={"tenant": tenant.slug,
                                               "journey_id": journey if isinstance(journey, int) else journey.pk})
    if step is not None:
        url += f"?step={step if isinstance(step, int) else step.pk}"
    return url + (f"#{anchor}" if anchor else "")


def _capped(queryset) -> str:
    n = queryset.order_by()[:COUNT_CAP + 1].count()
    return f"{COUNT_CAP:,}+" if n > COUNT_CAP else f"{n:,}"


def _fail(request: HttpRequest, exc: builder.BuilderError) -> None:
    messages.error(request, exc.message)
    for field, problems in exc.fields.items():
        for problem in problems:
            messages.error(request, f"{field}: {problem}" if field not in ("content",) else problem)


# --- the list, the library, import ------------------------------------------------------


@workspace_view()
def journey_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    journeys = list(Journey.objects.for_tenant(tenant).annotate(step_count=Count("steps"))
                    .order_by("-priority", "name"))
    enrollments = Enrollment.objects.for_tenant(tenant)
    rows = [{"journey": j, "trigger": trigger_sentence(j, tenant), "steps": j.step_count,
             "enrolled": _capped(enrollments.filter(journey=j, state__in=ENROLLED_STATES)),
             "sent": _capped(rollups.sends(tenant, j))}
            for j in journeys]
    status_order = {Journey.Status.ACTIVE: 0, Journey.Status.PAUSED: 1, Journey.Status.DRAFT: 2,
                    Journey.Status.ARCHIVED: 3}
    rows.sort(key=lambda r: status_order.get(r["journey"].status, 9))
    return render(request, "workspace/journeys/list.html", {
        "rows": rows, "new_form": NewJourneyForm(), "import_form": ImportForm(),
    })


@workspace_view()
def journey_new(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method != "POST":
        return redirect("workspace:journeys", tenant=tenant.slug)
    form = NewJourneyForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect("workspace:journeys", tenant=tenant.slug)
    try:
        journey = builder.safe_save(builder.journey_create, tenant=tenant, name=form.cleaned_data["name"],
                                    trigger=form.cleaned_data["trigger"], by=request.user.get_username())
    except builder.BuilderError as exc:
        _fail(request, exc)
        return redirect("workspace:journeys", tenant=tenant.slug)
    messages.success(request, f"Created “{journey.name}” as a draft with a first email. Edit it, add steps, "
                              "then activate.")
    return redirect(_builder_url(tenant, journey))


def _library_entry(key: str, installed: dict[str, Journey]) -> dict:
    data = library_load(key)
    journey = Journey(trigger=data.trigger, custom_event_type=data.custom_event_type, filters=data.filters.model_dump(
        mode="json", exclude_none=True), entry_policy=data.entry_policy, cooldown=data.cooldown,
        exit_events=list(data.exit_events))
    steps = [Step(position=s.position, name=s.name, wait_kind=s.wait_kind, wait=s.wait, anchor=s.anchor,
                  wait_event=s.wait_event, wait_max=s.wait_max, kind=s.kind, config=s.config,
                  template=EmailTemplate(subject=s.template.subject) if s.template else None)
             for s in sorted(data.steps, key=lambda s: s.position)]
    return {"key": key, "name": data.name, "description": data.description, "timeline": timeline(journey, steps),
            "steps": [{"when": wait_words(s), "does": step_does(s, {}), "title": step_title(s)} for s in steps],
            "transactional": data.message_class == "transactional", "installed": installed.get(key)}


@workspace_view()
def journey_library(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    installed = {j.library_key: j for j in Journey.objects.for_tenant(tenant).exclude(library_key="")}
    entries = [_library_entry(key, installed) for key in library_keys()]
    return render(request, "workspace/journeys/library.html", {"entries": entries})


@workspace_view()
def journey_library_install(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Install one library journey as a draft. Installing it again installs nothing: the page
    says where the installed one is (a copy would send the same email twice to everyone)."""
    if request.method != "POST":
        return redirect("workspace:journey_library", tenant=tenant.slug)
    key = request.POST.get("key", "")
    if key not in library_keys():
        messages.error(request, "There is no such journey in the library.")
        return redirect("workspace:journey_library", tenant=tenant.slug)
    result = library_install(tenant=tenant, keys=[key])
    if key in result.installed:
        journey = result.installed[key]
        messages.success(request, f"Installed “{journey.name}” as a draft. Check its email (the preview shows it for "
                                  "one of your customers), send yourself a test, then activate it.")
        first = Step.objects.for_tenant(tenant).filter(journey=journey).order_by("position").first()
        return redirect(_builder_url(tenant, journey, first))
    existing = Journey.objects.for_tenant(tenant).filter(library_key=key).first()
    messages.info(request, f"Not installed again: {result.skipped.get(key, 'already there')}.")
    if existing is not None:
        return redirect(_builder_url(tenant, existing))
    return redirect("workspace:journey_library", tenant=tenant.slug)


@workspace_view()
def journey_import(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method != "POST":
        return redirect("workspace:journeys", tenant=tenant.slug)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, "Import: " + " ".join(errors))
        return redirect("workspace:journeys", tenant=tenant.slug)
    try:
        journey = builder.safe_save(builder.journey_import_file, tenant=tenant, by=request.user.get_username(), raw=form.cleaned_data["file"].read())
    except builder.BuilderError as exc:
        _fail(request, exc)
        return redirect("workspace:journeys", tenant=tenant.slug)
    messages.success(request, f"Imported “{journey.name}” as a draft.")
    return redirect(_builder_url(tenant, journey))


# --- the builder page ------------------------------------------------------------------


def _surveys(tenant: Tenant) -> list[tuple[str, str]]:
    own = [(s.key, s.name) for s in Survey.objects.for_tenant(tenant).order_by("name")]
    keys = {key for key, _ in own}
    return own + [(k.value, k.label) for k in Survey.Kind if k.value not in keys]


def _segments(tenant: Tenant) -> list[tuple[int, str]]:
    return list(Segment.objects.for_tenant(tenant).order_by("name").values_list("pk", "name"))


def _pools(tenant: Tenant) -> list[str]:
    """Loyalty rewards whose codes come from an uploaded pool: what a discount-code step may give."""
    return list(Reward.objects.for_tenant(tenant).filter(code_source=Reward.CodeSource.POOL)
                .order_by("name").values_list("name", flat=True).distinct())


def _members(tenant: Tenant) -> list[tuple[str, str]]:
    """The team members a check-in may be signed by: (address, "Name <address>")."""
    users = [m.user for m in Membership.objects.filter(tenant=tenant).select_related("user") if m.user.email]
    return sorted((u.email.lower(), f"{signer_name(u)} <{u.email}>") for u in users)


def _step_form(tenant: Tenant, step: Step, steps: list[Step], lock: str | None, data=None) -> StepForm:
    return StepForm(data, initial=StepForm.initial_for(step), step=step, positions=[s.position for s in steps],
                    surveys=_surveys(tenant), structure_locked=bool(lock),
                    email_positions=[s.position for s in steps if s.kind in EMAIL_KINDS], pools=_pools(tenant),
                    members=_members(tenant))


def _builder(request: HttpRequest, tenant: Tenant, journey: Journey, *, selected: Step | None = None,
             step_form: StepForm | None = None, settings_form: SettingsForm | None = None,
             status: int = 200) -> HttpResponse:
    steps = list(Step.objects.for_tenant(tenant).filter(journey=journey).select_related("template")
                 .order_by("position"))
    by_position = {s.position: s for s in steps}
    if selected is None:
        wanted = request.GET.get("step", "")
        selected = next((s for s in steps if str(s.pk) == wanted), None) or next(
            (s for s in steps if s.kind in EMAIL_KINDS), steps[0] if steps else None)
    people = builder.active_enrollments(journey)
    lock = builder.structure_lock(journey, people)
    problems = journey_problems(journey, steps)
    step_rows = [{"step": s, "title": step_title(s), "when": wait_words(s), "does": step_does(s, by_position),
                  "kind": KIND_WORDS.get(s.kind, s.kind), "problems": [p for p in problems if p.position == s.position],
                  "first": i == 0, "last": i == len(steps) - 1}
                 for i, s in enumerate(steps)]
    graph = paths(steps, steps_reached(journey))
    for root in graph:
        for node in root.walk():
            node.title, node.does = step_title(node.step), step_does(node.step, by_position)
    preview, customers, preview_error = None, recent_customers(tenant), ""
    customer_key = request.GET.get("customer") or customers[0].key
    if selected is not None and step_form is None:
        step_form = _step_form(tenant, selected, steps, lock)
    if selected is not None and selected.kind in EMAIL_KINDS:
        content = (step_form.cleaned_data if step_form is not None and step_form.is_bound and step_form.is_valid()
                   else StepForm.initial_for(selected))
        try:
            preview = email_preview(tenant=tenant, journey=journey, step=selected, customer_key=customer_key,
                                    content={f: content.get(f) or "" for f in StepForm.CONTENT})
        except PreviewError as exc:
            preview_error = str(exc)
            if request.GET.get("customer") and status == 200:
                status = 400  # ?customer= names no customer of this store: the page says so
    return render(request, "workspace/journeys/builder.html", {
        "journey": journey, "steps": step_rows, "timeline": timeline(journey, steps),
        "problems": [{"problem": p, "step_id": by_position[p.position].pk if p.position in by_position else None}
                     for p in problems],
        "trigger_sentence": trigger_sentence(journey, tenant), "lock": lock,
        "active_people": builder.people_words(people) if people else "", "selected": selected,
        "paths": graph, "unreached": unreached_steps(steps),
        "selected_does": step_does(selected, by_position) if selected is not None else "",
        "step_form": step_form,
        "settings_form": settings_form or SettingsForm(initial=SettingsForm.initial_for(journey), segments=_segments(tenant),
                                                       structure_locked=bool(lock), prefix=SETTINGS_PREFIX),
        "add_form": AddStepForm(prefix=ADD_PREFIX), "preview": preview, "preview_error": preview_error, "customers": customers,
        "customer_key": customer_key, "horizon_days": HORIZON.days, "selected_sends_email":
        selected is not None and selected.kind in EMAIL_KINDS,
        "outbox": settings.EMAIL_BACKEND == "lifecycle.mail.OutboxBackend",
        "user_email": request.user.email, "can_structure": not lock,
        "editable": journey.status != Journey.Status.ARCHIVED,
        "placeholders": PLACEHOLDERS + (REFERRAL_PLACEHOLDERS if selected is not None
                                        and selected.kind == Step.Kind.REFERRAL_INVITE else [])
        + KIND_PLACEHOLDERS.get(selected.kind if selected is not None else "", []),
        "webhook_calls": _webhook_calls(tenant, selected),
    }, status=status)


@workspace_view()
def journey_detail(request: HttpRequest, tenant: Tenant, journey_id: int) -> HttpResponse:
    return _builder(request, tenant, _journey(tenant, journey_id))


@workspace_view()
def journey_settings(request: HttpRequest, tenant: Tenant, journey_id: int) -> HttpResponse:
    journey = _journey(tenant, journey_id)
    if request.method != "POST":
        return redirect(_builder_url(tenant, journey))
    lock = builder.structure_lock(journey)
    form = SettingsForm(request.POST, initial=SettingsForm.initial_for(journey), structure_locked=bool(lock),
                        prefix=SETTINGS_PREFIX, segments=_segments(tenant))
    if not form.is_valid():
        messages.error(request, "The trigger and filters were not saved: see the messages beside the fields.")
        return _builder(request, tenant, journey, settings_form=form, status=400)
    try:
        builder.safe_save(builder.journey_settings_update, tenant=tenant, by=request.user.get_username(), journey_id=journey.pk, values=form.values())
    except builder.BuilderError as exc:
        _fail(request, exc)
        return _builder(request, tenant, journey, settings_form=form, status=400)
    messages.success(request, "Saved the trigger and filters.")
    return redirect(_builder_url(tenant, journey, anchor="settings"))


@workspace_view()
def journey_status(request: HttpRequest, tenant: Tenant, journey_id: int) -> HttpResponse:
    journey = _journey(tenant, journey_id)
    if request.method != "POST":
        return redirect(_builder_url(tenant, journey))
    action = request.POST.get("action", "")
    try:
        journey = builder.journey_set_status(tenant=tenant, journey_id=journey.pk, action=action,
                                             by=request.user.get_username())
    except builder.NotActivatable as exc:
        messages.error(request, f"Not activated: {exc.message} each is listed under “Before it can go live”, "
                                "with a link to its step.")
        return redirect(_builder_url(tenant, journey, anchor="problems"))
    except builder.BuilderError as exc:
        _fail(request, exc)
        return redirect(_builder_url(tenant, journey))
    done = {"activate": "is live: customers who match its trigger from now on enter it",
            "pause": "is paused: nobody new enters, and its scheduled emails wait until you activate it again",
            "archive": "is archived: nobody new enters, and customers in it leave at their next step"}[action]
    messages.success(request, f"“{journey.name}” {done}.")
    return redirect(_builder_url(tenant, journey))


@workspace_view()
def journey_duplicate(request: HttpRequest, tenant: Tenant, journey_id: int) -> HttpResponse:
    journey = _journey(tenant, journey_id)
    if request.method != "POST":
        return redirect(_builder_url(tenant, journey))
    try:
        copy = builder.safe_save(builder.journey_duplicate, tenant=tenant, by=request.user.get_username(), journey_id=journey.pk)
    except builder.BuilderError as exc:
        _fail(request, exc)
        return redirect(_builder_url(tenant, journey))
    messages.success(request, f"Duplicated as “{copy.name}”, a draft: change it freely, then activate it.")
    return redirect(_builder_url(tenant, copy))


@workspace_view()
def journey_export_json(request: HttpRequest, tenant: Tenant, journey_id: int) -> HttpResponse:
    journey = _journey(tenant, journey_id)
    body = json.dumps(journey_export(journey), indent=2, ensure_ascii=False, default=str)
    response = HttpResponse(body + "\n", content_type="application/json; charset=utf-8")
    filename = (slugify(journey.name) or f"journey-{journey.pk}") + ".json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- steps -------------------------------------------------------------------------


@workspace_view()
def journey_step_add(request: HttpRequest, tenant: Tenant, journey_id: int) -> HttpResponse:
    journey = _journey(tenant, journey_id)
    if request.method != "POST":
        return redirect(_builder_url(tenant, journey))
    form = AddStepForm(request.POST, prefix=ADD_PREFIX)
    wait = form.wait() if form.is_valid() else None
    if wait is None:
        messages.error(request, "Choose what the new step does and how long it waits.")
        return redirect(_builder_url(tenant, journey, anchor="steps"))
    try:
        step = builder.safe_save(builder.step_add, tenant=tenant, by=request.user.get_username(), journey_id=journey.pk,
                                 kind=form.cleaned_data["kind"], wait=wait)
    except builder.BuilderError as exc:
        _fail(request, exc)
        return redirect(_builder_url(tenant, journey, anchor="steps"))
    messages.success(request, f"Added step {step.position}.")
    return redirect(_builder_url(tenant, journey, step, anchor="editor"))


def _webhook_calls(tenant: Tenant, step: Step | None) -> list[dict]:
    """A webhook step's latest calls with every attempt (journeys/webhooks.py), newest first."""
    if step is None or step.kind != Step.Kind.WEBHOOK:
        return []
    calls = list(WebhookCall.objects.for_tenant(tenant).filter(step=step).select_related("customer")
                 .order_by("-created_at", "-pk")[:STEP_CALLS])
    attempts: dict[int, list[WebhookAttempt]] = {}
    for attempt in WebhookAttempt.objects.for_tenant(tenant).filter(call__in=calls).order_by("number"):
        attempts.setdefault(attempt.call_id, []).append(attempt)
    return [{"call": c, "attempts": attempts.get(c.pk, [])} for c in calls]


@workspace_view()
def journey_step(request: HttpRequest, tenant: Tenant, journey_id: int, step_id: int) -> HttpResponse:
    """Save one step: its timing and kind (when the structure may change), name and email."""
    journey = _journey(tenant, journey_id)
    step = _step(tenant, journey, step_id)
    if request.method != "POST":
        return redirect(_builder_url(tenant, journey, step, anchor="editor"))
    steps = list(Step.objects.for_tenant(tenant).filter(journey=journey).order_by("position"))
    lock = builder.structure_lock(journey)
    form = _step_form(tenant, step, steps, lock, data=request.POST)
    if not form.is_valid():
        messages.error(request, f"Step {step.position} was not saved: see the messages beside the fields.")
        return _builder(request, tenant, journey, selected=step, step_form=form, status=400)
    content = form.content() if (form.cleaned_data.get("kind") or step.kind) in EMAIL_KINDS else None
    if content is not None and step.kind not in EMAIL_KINDS:
        content = None  # the step just became an email: it starts from the starter text
    try:
        builder.safe_save(builder.step_update, tenant=tenant, by=request.user.get_username(), journey_id=journey.pk, step_id=step.pk,
                          values=form.values(), content=content)
    except builder.BuilderError as exc:
        _fail(request, exc)
        return _builder(request, tenant, journey, selected=step, step_form=form, status=400)
    messages.success(request, f"Saved step {step.position}."
                     + (" Live now: the next emails of this step go out with this text." if
                        journey.status == Journey.Status.ACTIVE else ""))
    return redirect(_builder_url(tenant, journey, step, anchor="editor"))


@workspace_view()
def journey_step_move(request: HttpRequest, tenant: Tenant, journey_id: int, step_id: int) -> HttpResponse:
    journey = _journey(tenant, journey_id)
    step = _step(tenant, journey, step_id)
    if request.method != "POST":
        return redirect(_builder_url(tenant, journey, step))
    try:
        builder.safe_save(builder.step_move, tenant=tenant, by=request.user.get_username(), journey_id=journey.pk, step_id=step.pk,
                          direction=request.POST.get("direction", ""))
    except builder.BuilderError as exc:
        _fail(request, exc)
    return redirect(_builder_url(tenant, journey, step, anchor="steps"))


@workspace_view()
def journey_step_remove(request: HttpRequest, tenant: Tenant, journey_id: int, step_id: int) -> HttpResponse:
    journey = _journey(tenant, journey_id)
    step = _step(tenant, journey, step_id)
    if request.method != "POST":
        return redirect(_builder_url(tenant, journey, step))
    try:
        builder.safe_save(builder.step_remove, tenant=tenant, by=request.user.get_username(), journey_id=journey.pk, step_id=step.pk)
    except builder.BuilderError as exc:
        _fail(request, exc)
        return redirect(_builder_url(tenant, journey, step, anchor="steps"))
    messages.success(request, f"Removed step {step.position}.")
    return redirect(_builder_url(tenant, journey, anchor="steps"))


def _content_form(request: HttpRequest, step: Step) -> tuple[ContentForm | None, JsonResponse | None]:
    if request.method != "POST":
        return None, JsonResponse({"error": "Send the email's fields with POST."}, status=405)
    if step.kind not in EMAIL_KINDS:
        return None, JsonResponse({"error": "This step sends no email."}, status=400)
    form = ContentForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{field}: {' '.join(e)}" for field, e in form.errors.items())
        return None, JsonResponse({"error": f"Could not read the email: {errors}"}, status=400)
    return form, None


@workspace_view()
def journey_step_preview(request: HttpRequest, tenant: Tenant, journey_id: int, step_id: int) -> HttpResponse:
    """The email as it would be sent, rendered from the posted (unsaved) fields. Writes nothing."""
    journey = _journey(tenant, journey_id)
    step = _step(tenant, journey, step_id)
    form, error = _content_form(request, step)
    if error is not None:
        return error
    try:
        preview = email_preview(tenant=tenant, journey=journey, step=step, content=form.content(),
                                customer_key=form.cleaned_data.get("customer") or "sample")
    except PreviewError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(preview.as_json())


@workspace_view()
def journey_step_test(request: HttpRequest, tenant: Tenant, journey_id: int, step_id: int) -> HttpResponse:
    """Send the posted email to the signed-in user, as "[Test] …". No Delivery, no customer touched."""
    journey = _journey(tenant, journey_id)
    step = _step(tenant, journey, step_id)
    wants_json = "application/json" in request.headers.get("Accept", "")
    form, error = _content_form(request, step)
    if error is not None:
        if wants_json:
            return error
        messages.error(request, json.loads(error.content)["error"])
        return redirect(_builder_url(tenant, journey, step, anchor="editor"))
    try:
        address, _ = email_send_test(tenant=tenant, journey=journey, step=step, content=form.content(),
                                     customer_key=form.cleaned_data.get("customer") or "sample", user=request.user)
    except (TestNotSent, PreviewError) as exc:
        if wants_json:
            return JsonResponse({"error": str(exc)}, status=400)
        messages.error(request, str(exc))
        return redirect(_builder_url(tenant, journey, step, anchor="editor"))
    where = (" This installation keeps email in its local outbox (Admin → Outbox messages)."
             if settings.EMAIL_BACKEND == "lifecycle.mail.OutboxBackend" else "")
    text = f"Test sent to {address}, subject starting “[Test]”.{where}"
    if wants_json:
        return JsonResponse({"sent_to": address, "message": text})
    messages.success(request, text)
    return redirect(_builder_url(tenant, journey, step, anchor="editor"))


urlpatterns = [
    path("journeys/", journey_list, name="journeys"),
    path("journeys/new/", journey_new, name="journey_new"),
    path("journeys/library/", journey_library, name="journey_library"),
    path("journeys/library/install/", journey_library_install, name="journey_library_install"),
    path("journeys/import/", journey_import, name="journey_import"),
    path("journeys/<int:journey_id>/", journey_detail, name="journey"),
    path("journeys/<int:journey_id>/settings/", journey_settings, name="journey_settings"),
    path("journeys/<int:journey_id>/status/", journey_status, name="journey_status"),
    path("journeys/<int:journey_id>/duplicate/", journey_duplicate, name="journey_duplicate"),
    path("journeys/<int:journey_id>/export/", journey_export_json, name="journey_export"),
    path("journeys/<int:journey_id>/steps/add/", journey_step_add, name="journey_step_add"),
    path("journeys/<int:journey_id>/steps/<int:step_id>/", journey_step, name="journey_step"),
    path("journeys/<int:journey_id>/steps/<int:step_id>/move/", journey_step_move, name="journey_step_move"),
    path("journeys/<int:journey_id>/steps/<int:step_id>/remove/", journey_step_remove, name="journey_step_remove"),
    path("journeys/<int:journey_id>/steps/<int:step_id>/preview/", journey_step_preview,
         name="journey_step_preview"),
    path("journeys/<int:journey_id>/steps/<int:step_id>/test/", journey_step_test, name="journey_step_test"),
]
