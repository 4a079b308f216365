"""Every write the journey builder makes: create, change settings, add / edit / move / remove
steps, activate / pause / archive, duplicate, import a JSON file.

What may change when (stated on the builder page too):
- Words — step names, email subject, preheader, body and signature, the journey's name and
  description — and the journey's email category (what customers' preferences hold back) may
  change at any time. On an active journey the new text must be free of
  problems; it goes out with every email sent from then on, including to customers already
  waiting for that step.
- Structure — trigger, filters, entry and exit rules, steps, their waits, kinds and branches —
  changes only while the journey is a draft or paused AND no customer is mid-journey, because
  moving steps under someone waiting on them would skip or repeat emails. The same rule as a
  JSON import (journeys.io).
- Archived journeys do not change; duplicate one to reuse it.

Each service is one transaction holding the journey row FOR UPDATE, which also holds back
new enrollments into it (an enrollment's foreign key takes a KEY SHARE lock on the journey).
"""

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count
from pydantic import ValidationError

from lifecycle import clock, jsonbody
from lifecycle.changes import json_safe
from lifecycle.errors import ServiceError
from lifecycle.locks import advisory_lock
from lifecycle.models import Tenant
from lifecycle.timeline import event_append

from .builder_checks import EMAIL_KINDS, content_problems
from .definition import MAX_STEPS, JourneyIn, unavailable_kind_problem
from .io import NotReady, activation_check, journey_import, survey_id_problem
from .models import Delivery, EmailTemplate, Enrollment, Journey, Step
from .rollups import MEASURE_FIELDS, outcomes_forget
from .template_checks import is_limit_problem

STARTER_SUBJECT = "A note from {{ store.name }}"
STARTER_BODY = "<p>Hi {{ first_name }},</p>\n<p>Write your message here.</p>"
STRUCTURE_FIELDS = ("trigger", "custom_event_type", "trigger_config", "filters", "entry_policy", "cooldown", "replace_running",
                    "exit_events", "goal_event", "attribution_window", "holdout_percent", "message_class", "priority")
WORD_FIELDS = ("name", "description")
STEP_STRUCTURE_FIELDS = ("wait_kind", "wait", "anchor", "wait_event", "wait_max", "kind", "config", "next_position",
                         "ends")
TEMPLATE_FIELDS = ("subject", "preheader", "body", "signature")


class BuilderError(ServiceError):
    """A change the builder refuses; `fields` maps a form field (or a step anchor) to messages."""


class NotActivatable(BuilderError):
    """io.NotReady as the builder shows it: the same check and message, each problem linked to its step."""

    def __init__(self, refused: NotReady):
        super().__init__(refused.code, refused.message)
        self.problems = refused.problems


def _locked(tenant: Tenant, journey_id: int) -> Journey:
    journey = Journey.objects.for_tenant(tenant).select_for_update().filter(pk=journey_id).first()
    if journey is None:
        raise BuilderError("journeys.not_found", "This journey no longer exists.")
    return journey


# Customers mid-journey are counted up to here (an index range scan of at most this many rows):
# the page says "10,000+" past it, and the lock only needs to know there is anyone.
PEOPLE_CAP = 10_000


def active_enrollments(journey: Journey) -> int:
    """Customers mid-journey, counted up to PEOPLE_CAP + 1."""
    rows = Enrollment.objects.for_tenant(journey.tenant_id).filter(journey=journey, state=Enrollment.State.ACTIVE)
    return rows.order_by()[:PEOPLE_CAP + 1].count()


def people_words(n: int) -> str:
    if n > PEOPLE_CAP:
        return f"More than {PEOPLE_CAP:,} customers are"
    return f"{n:,} customer{'s are' if n != 1 else ' is'}"


def structure_lock(journey: Journey, people: int | None = None) -> str | None:
    """Why the journey's structure cannot change now, or None when it can. `people`: customers
    mid-journey, when the caller has counted them already."""
    if journey.status == Journey.Status.ARCHIVED:
        return "This journey is archived and does not change: duplicate it to build on it."
    if journey.status == Journey.Status.ACTIVE:
        return ("This journey is live: pause it to change its trigger, filters or steps. "
                "Texts can change while it runs.")
    people = active_enrollments(journey) if people is None else people
    if people:
        return (f"{people_words(people)} mid-journey, so its trigger, filters and "
                "steps stay as they are until they finish (moving steps under them would skip or repeat emails). "
                "Texts can still change; duplicate the journey to build a changed version.")
    return None


def _require_structure(journey: Journey) -> None:
    reason = structure_lock(journey)
    if reason:
        raise BuilderError("journeys.structure_locked", reason)


def _require_editable(journey: Journey) -> None:
    if journey.status == Journey.Status.ARCHIVED:
        raise BuilderError("journeys.archived", "This journey is archived and does not change: duplicate it to "
                                                "build on it.")


def _name_taken(tenant: Tenant, name: str, *, exclude: int | None = None) -> bool:
    rows = Journey.objects.for_tenant(tenant).filter(name=name)
    return rows.exclude(pk=exclude).exists() if exclude else rows.exists()


def _free_template_name(tenant: Tenant | int, base: str) -> str:
    base = base[:190]
    taken = set(EmailTemplate.objects.for_tenant(tenant).filter(name__startswith=base).values_list("name", flat=True))
    if base not in taken:
        return base
    n = 2
    while f"{base} ({n})" in taken:
        n += 1
    return f"{base} ({n})"


def _starter_template(tenant: Tenant | int, journey: Journey, position: int) -> EmailTemplate:
    return EmailTemplate.objects.for_tenant(tenant).create(
        tenant_id=journey.tenant_id, name=_free_template_name(tenant, f"{journey.name} · step {position}"),
        subject=STARTER_SUBJECT, body=STARTER_BODY)


def _drop_template_if_unused(tenant_id: int, template_id: int | None) -> None:
    if template_id and not Step.objects.for_tenant(tenant_id).filter(template_id=template_id).exists():
        EmailTemplate.objects.for_tenant(tenant_id).filter(pk=template_id).delete()


# --- journeys ----------------------------------------------------------------------


STATUS_EVENTS = {"activate": "store.journey_activated", "pause": "store.journey_paused",
                 "archive": "store.journey_archived"}


def _record(tenant: Tenant, journey: Journey, type_: str, by: str, **data: Any) -> None:
    """The audit log's line: a workspace user's change to a journey, on the store's timeline."""
    if by:
        event_append(tenant=tenant, type=type_, occurred_at=clock.now(),
                     data={"journey": journey.name, "journey_id": journey.pk, **data, "by": by})


def journey_create(*, tenant: Tenant, name: str, trigger: str, by: str = "") -> Journey:
    """A draft journey with one starter email a day after the trigger."""
    name = name.strip()
    with transaction.atomic():
        advisory_lock(tenant.pk, "journey-name", name)
        if _name_taken(tenant, name):
            raise BuilderError("journeys.name_taken", f"A journey named “{name}” already exists: choose another name.",
                               {"name": ["is already the name of a journey in this store"]})
        journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, name=name, trigger=trigger)
        template = _starter_template(tenant, journey, 1)
        Step.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, position=1, name="First email",
                                               wait=dt.timedelta(days=1), template=template)
        _record(tenant, journey, "store.journey_created", by, trigger=trigger)
    return journey


def journey_settings_update(*, tenant: Tenant, journey_id: int, values: dict[str, Any], by: str = "") -> Journey:
    """Change the journey's name, description, category, trigger, filters and rules. Words and the
    category always (unless archived); anything else only when the structure may change. Writes only
    what differs."""
    with transaction.atomic():
        journey = _locked(tenant, journey_id)
        _require_editable(journey)
        changed = {key: value for key, value in values.items() if getattr(journey, key) != value}
        if any(key in STRUCTURE_FIELDS for key in changed):
            _require_structure(journey)
        if "name" in changed:
            advisory_lock(tenant.pk, "journey-name", changed["name"])
            if _name_taken(tenant, changed["name"], exclude=journey.pk):
                raise BuilderError("journeys.name_taken", f"A journey named “{changed['name']}” already exists.",
                                   {"name": ["is already the name of a journey in this store"]})
        if changed:
            _record(tenant, journey, "store.journey_changed", by, changes={
                key: [json_safe(getattr(journey, key)), json_safe(value)] for key, value in changed.items()})
        for key, value in changed.items():
            setattr(journey, key, value)
        if changed:
            journey.save(update_fields=[*changed, "updated_at"])
        if any(key in MEASURE_FIELDS for key in changed):
            outcomes_forget(tenant=tenant, journey=journey)
    return journey


def journey_set_status(*, tenant: Tenant, journey_id: int, action: str, by: str = "") -> Journey:
    """activate (draft or paused → active, only with no problems), pause (active → paused),
    archive (any → archived: its customers leave at their next step)."""
    moves = {"activate": ((Journey.Status.DRAFT, Journey.Status.PAUSED), Journey.Status.ACTIVE),
             "pause": ((Journey.Status.ACTIVE,), Journey.Status.PAUSED),
             "archive": ((Journey.Status.DRAFT, Journey.Status.ACTIVE, Journey.Status.PAUSED),
                         Journey.Status.ARCHIVED)}
    if action not in moves:
        raise BuilderError("journeys.bad_action", f"Unknown action “{action}”.")
    allowed_from, to = moves[action]
    with transaction.atomic():
        journey = _locked(tenant, journey_id)
        if journey.status not in allowed_from:
            raise BuilderError("journeys.bad_transition",
                               f"A journey that is {journey.status} cannot be {'activated' if action == 'activate' else action + 'd'}.")
        if action == "activate":
            try:
                activation_check(journey)
            except NotReady as exc:
                raise NotActivatable(exc) from exc
        before = journey.status
        journey.status = to
        journey.save(update_fields=["status", "updated_at"])
        _record(tenant, journey, STATUS_EVENTS[action], by,
                changes={"status": [before, to]})
    return journey


def _copy_name(tenant: Tenant, name: str) -> str:
    base = f"{name[:185]} (copy)"
    if not _name_taken(tenant, base):
        return base
    n = 2
    while _name_taken(tenant, f"{name[:180]} (copy {n})"):
        n += 1
    return f"{name[:180]} (copy {n})"


def journey_duplicate(*, tenant: Tenant, journey_id: int, by: str = "") -> Journey:
    """A draft copy named "<name> (copy)", with its own copies of every email. Nothing of the
    original's customers or history comes along, nor its library key."""
    with transaction.atomic():
        source = _locked(tenant, journey_id)
        name = _copy_name(tenant, source.name)
        advisory_lock(tenant.pk, "journey-name", name)
        copy = Journey.objects.for_tenant(tenant).get(pk=source.pk)
        copy.pk = copy.id = None
        copy._state.adding = True
        copy.name, copy.status, copy.library_key = name, Journey.Status.DRAFT, ""
        copy.save()
        for step in Step.objects.for_tenant(tenant).filter(journey=source).select_related("template").order_by(
                "position"):
            template = step.template
            if template is not None:
                template.pk = template.id = None
                template._state.adding = True
                template.name = _free_template_name(tenant, f"{name} · step {step.position}")
                template.save()
            step.pk = step.id = None
            step._state.adding = True
            step.journey, step.template = copy, template
            step.save()
        _record(tenant, copy, "store.journey_created", by, trigger=copy.trigger, copied_from=source.name)
    return copy


def journey_import_file(*, tenant: Tenant, raw: bytes, by: str = "") -> Journey:
    """A new draft journey from exported JSON, validated by journeys.definition. Never updates an
    existing journey (the API does that, by name): a taken name is refused."""
    try:
        data = jsonbody.loads(raw)  # bounded like every body we are sent: depth, number length
    except jsonbody.JSONBodyError as exc:
        raise BuilderError("journeys.bad_json", f"This file is not JSON we can read: {exc.message}") from exc
    try:
        journey_in = JourneyIn.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(the file)"
            fields.setdefault(where, []).append(error["msg"].removeprefix("Value error, "))
        raise BuilderError("journeys.invalid", "The file is not a journey this store can import:", fields) from exc
    if _name_taken(tenant, journey_in.name):
        raise BuilderError("journeys.name_taken",
                           f"A journey named “{journey_in.name}” already exists here. Change \"name\" in the file to "
                           "import it as a new journey.")
    # Template names are internal: each imported email gets "<journey> · step <n>", never a clash.
    steps = [step.model_copy(update={"template": step.template.model_copy(update={"name": None})})
             if step.template is not None else step for step in journey_in.steps]
    journey_in = journey_in.model_copy(update={"status": "draft", "steps": steps})
    with transaction.atomic():
        try:
            journey, created = journey_import(tenant=tenant, data=journey_in)
        except ServiceError as exc:  # a taken template name, another store's survey…
            raise BuilderError(exc.code, exc.message, exc.fields) from exc
        if not created:  # a same-named journey appeared meanwhile: leave it alone
            raise BuilderError("journeys.name_taken", f"A journey named “{journey_in.name}” already exists here.")
        _record(tenant, journey, "store.journey_created", by, trigger=journey.trigger, imported=True)
    return journey


# --- steps -------------------------------------------------------------------------


def _steps(tenant: Tenant, journey: Journey) -> list[Step]:
    return list(Step.objects.for_tenant(tenant).filter(journey=journey).order_by("position"))


def _remap(config: dict[str, Any], mapping: dict[int, int | None]) -> dict[str, Any]:
    """A branch config with positions renamed (None: the target is gone)."""
    config = dict(config or {})
    for key in ("then", "else"):
        if isinstance(config.get(key), int) and config[key] in mapping:
            config[key] = mapping[config[key]]
    if isinstance(config.get("variants"), list):
        config["variants"] = [
            {**v, "step": mapping[v["step"]]} if isinstance(v, dict) and v.get("step") in mapping else v
            for v in config["variants"]]
    return config


def _renumber(tenant: Tenant, journey: Journey, order: list[Step], mapping: dict[int, int | None]) -> None:
    """Give `order` positions 1..n and rewrite branch targets with `mapping` (old → new position).
    Two passes through positions no step uses, because (journey, position) is unique."""
    rows = Step.objects.for_tenant(tenant)
    offset = max([s.position for s in order] + [0]) + 1000
    for step in order:
        rows.filter(pk=step.pk).update(position=step.position + offset)
    for new, step in enumerate(order, start=1):
        step.position = new
        step.config = _remap(step.config, mapping)
        rows.filter(pk=step.pk).update(position=new, config=step.config)


def _require_available_kind(kind: str) -> None:
    problem = unavailable_kind_problem(kind)
    if problem:
        raise BuilderError("journeys.kind_unavailable", problem + ".", {"kind": [problem]})


def _require_own_survey(tenant: Tenant, config: dict[str, Any]) -> None:
    problem = survey_id_problem(tenant, config)
    if problem:
        raise BuilderError("journeys.unknown_survey", problem + ".", {"survey": [problem]})


def step_add(*, tenant: Tenant, journey_id: int, kind: str, wait: dt.timedelta, by: str = "") -> Step:
    """A new last step; email kinds start with a starter email to edit."""
    _require_available_kind(kind)
    with transaction.atomic():
        journey = _locked(tenant, journey_id)
        _require_structure(journey)
        steps = _steps(tenant, journey)
        if len(steps) >= MAX_STEPS:
            raise BuilderError("journeys.too_many_steps", f"A journey has at most {MAX_STEPS} steps.")
        position = (steps[-1].position if steps else 0) + 1
        template = _starter_template(tenant, journey, position) if kind in EMAIL_KINDS else None
        config = {"variants": [{"step": position + 1, "weight": 1}, {"step": position + 2, "weight": 1}]} \
            if kind == Step.Kind.AB_SPLIT else {}
        step = Step.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, position=position, kind=kind,
                                                      wait=wait, template=template, config=config)
        journey.save(update_fields=["updated_at"])
        _record(tenant, journey, "store.journey_step_added", by, step=position, kind=kind, wait=json_safe(wait))
    return step


def step_update(*, tenant: Tenant, journey_id: int, step_id: int, values: dict[str, Any],
                content: dict[str, str] | None, by: str = "") -> Step:
    """Change one step. `values`: name and structure (wait, kind, config); `content`: the email's
    subject, preheader, body and signature (None: leave the email alone). Only what differs is
    written; structure only when it may change; content on a live journey only when it has no
    problems. A template another step also uses is copied first, so only this step changes."""
    with transaction.atomic():
        journey = _locked(tenant, journey_id)
        _require_editable(journey)
        step = Step.objects.for_tenant(tenant).select_related("template").get(pk=step_id, journey=journey)
        changed = {key: value for key, value in values.items() if getattr(step, key) != value}
        changes = {key: [json_safe(getattr(step, key)), json_safe(value)] for key, value in changed.items()}
        email_before = {f: getattr(step.template, f) if step.template else "" for f in TEMPLATE_FIELDS}
        if any(key in STEP_STRUCTURE_FIELDS for key in changed):
            _require_structure(journey)
        if "kind" in changed:
            _require_available_kind(changed["kind"])
        if "config" in changed:
            _require_own_survey(tenant, changed["config"] or {})
        kind = changed.get("kind", step.kind)
        template = step.template
        if kind not in EMAIL_KINDS and template is not None:
            changed["template"] = None
        elif kind in EMAIL_KINDS and content is not None:
            problems = content_problems(**{f: content.get(f, "") for f in ("subject", "preheader", "body")},
                                        kind=kind, position=step.position)
            costly = [p.message for p in problems if is_limit_problem(p.message)]
            if costly:  # refused whatever the journey's status: such a template is never worth keeping
                raise BuilderError("journeys.template_too_costly",
                                   f"Step {step.position} was not saved: its email would make too much work or "
                                   "too big a message for every customer. Change this:", {"content": costly})
            if journey.status == Journey.Status.ACTIVE and problems:
                raise BuilderError("journeys.content_problems",
                                   "This journey is live, so its emails must be ready to send. Fix these first:",
                                   {"content": [p.message for p in problems]})
            wanted = {field: content.get(field, "") for field in TEMPLATE_FIELDS}
            if template is None:
                template = EmailTemplate(tenant=tenant, name=_free_template_name(
                    tenant, f"{journey.name} · step {step.position}"), **wanted)
                template.save()
                changed["template"] = template
            elif any(getattr(template, f) != v for f, v in wanted.items()):
                shared = Step.objects.for_tenant(tenant).filter(template=template).exclude(pk=step.pk).exists()
                if shared:
                    template = EmailTemplate(tenant=tenant, name=_free_template_name(tenant, f"{template.name} (own)"),
                                             translations=template.translations, **wanted)
                    template.save()
                    changed["template"] = template
                else:
                    for field, value in wanted.items():
                        setattr(template, field, value)
                    template.save(update_fields=[*TEMPLATE_FIELDS, "updated_at"])
                    journey.save(update_fields=["updated_at"])
        elif kind in EMAIL_KINDS and template is None:
            changed["template"] = _starter_template(tenant, journey, step.position)
        old_template_id = step.template_id
        for key, value in changed.items():
            setattr(step, key, value)
        if changed:
            step.save()
            journey.save(update_fields=["updated_at"])
            if "template" in changed and old_template_id != step.template_id:
                _drop_template_if_unused(tenant.pk, old_template_id)
        email_after = {f: getattr(step.template, f) if step.template else "" for f in TEMPLATE_FIELDS}
        changes.update({f: [email_before[f], email_after[f]] for f in TEMPLATE_FIELDS
                        if email_before[f] != email_after[f]})
        if changes:
            _record(tenant, journey, "store.journey_step_changed", by, step=step.position, changes=changes)
    return step


def step_move(*, tenant: Tenant, journey_id: int, step_id: int, direction: str, by: str = "") -> Step:
    """Swap a step with its neighbour above ("up") or below ("down"). The rows move, so each
    step keeps its email and its history; branches keep pointing at the same steps."""
    if direction not in ("up", "down"):
        raise BuilderError("journeys.bad_direction", "Move a step up or down.")
    with transaction.atomic():
        journey = _locked(tenant, journey_id)
        _require_structure(journey)
        steps = _steps(tenant, journey)
        index = next((i for i, s in enumerate(steps) if s.pk == step_id), None)
        if index is None:
            raise BuilderError("journeys.not_found", "This step no longer exists.")
        other = index - 1 if direction == "up" else index + 1
        if not 0 <= other < len(steps):
            return steps[index]
        order = list(steps)
        order[index], order[other] = order[other], order[index]
        mapping = {step.position: new for new, step in enumerate(order, start=1)}
        _renumber(tenant, journey, order, mapping)
        journey.save(update_fields=["updated_at"])
        _record(tenant, journey, "store.journey_step_moved", by, changes={"position": [index + 1, other + 1]})
        return order[other]


def step_remove(*, tenant: Tenant, journey_id: int, step_id: int, by: str = "") -> None:
    """Remove a step with no send history; later steps move up, branches to it are cleared."""
    with transaction.atomic():
        journey = _locked(tenant, journey_id)
        _require_structure(journey)
        steps = _steps(tenant, journey)
        step = next((s for s in steps if s.pk == step_id), None)
        if step is None:
            raise BuilderError("journeys.not_found", "This step no longer exists.")
        history = Delivery.objects.for_tenant(tenant).filter(step=step).aggregate(n=Count("pk"))["n"]
        if history:
            raise BuilderError("journeys.step_has_history",
                               f"Step {step.position} has {history} deliveries on record; removing it would delete "
                               "that history. Duplicate the journey to build a version without it.")
        order = [s for s in steps if s.pk != step.pk]
        mapping: dict[int, int | None] = {s.position: new for new, s in enumerate(order, start=1)}
        mapping[step.position] = None
        template_id = step.template_id
        step.delete()
        _renumber(tenant, journey, order, mapping)
        for s in order:  # an A/B branch whose step is gone goes nowhere: drop it (validation will ask for two)
            if isinstance((s.config or {}).get("variants"), list):
                kept = [v for v in s.config["variants"] if not (isinstance(v, dict) and v.get("step") is None)]
                if kept != s.config["variants"]:
                    Step.objects.for_tenant(tenant).filter(pk=s.pk).update(config={**s.config, "variants": kept})
        _drop_template_if_unused(tenant.pk, template_id)
        journey.save(update_fields=["updated_at"])
        _record(tenant, journey, "store.journey_step_removed", by, step=step.position, name=step.name)


def safe_save(fn, **kwargs):
    """Run a builder service; a unique-constraint race reads as a BuilderError, not a 500."""
    try:
        return fn(**kwargs)
    except IntegrityError as exc:
        raise BuilderError("journeys.conflict", "Someone changed this journey at the same moment: reload and "
                                                "try again.") from exc
