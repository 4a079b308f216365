"""Journeys as code: export a journey to JSON, import it back, install the built-in library.

The JSON is `journeys.definition.JourneyIn`: the journey, its steps and each step's email
template, inline. `journey_export` and `journey_import` are inverses: export → import
(into any store) → export gives the same JSON.

Update rules (an import whose `name` matches an existing journey):
- nothing differs: nothing is written;
- a file that names no `category` (one exported before journeys had them) keeps the journey's;
  a new journey gets journeys.categories.category_default;
- no customer is in the journey (no active enrollment): everything may change. Steps are
  matched by position and updated in place, so the history of a kept step stays attached
  to it; a removed step must have no deliveries (its send history would go with it);
- customers are in it: only content may change — the description, the status, the email
  category (what customers' preferences hold back), step names and templates (subject, body, translations…: pending emails go out with the new text).
  Anything that would move someone mid-journey (trigger, filters, exits, steps, waits,
  branches) is refused with 409 `journeys.has_active_enrollments`, naming each change.
"""

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Count

from feedback.models import Survey
from lifecycle.errors import Conflict, ServiceError
from lifecycle.locks import advisory_lock
from lifecycle.models import Tenant

from .categories import category_default
from .definition import JourneyIn
from .durations import format_duration, parse_duration
from .graph import END, declared_next
from .models import Delivery, EmailTemplate, Enrollment, Journey, Segment, Step
from .rollups import MEASURE_FIELDS, outcomes_forget
from .step_refs import reference_problems

LIBRARY_DIR = Path(__file__).resolve().parent / "library"

# What may change while customers are in a journey: words and state, not the path they are on.
CONTENT_KEYS = {"description", "status", "category"}
STEP_CONTENT_KEYS = {"name", "template"}
TEMPLATE_FIELDS = ("subject", "preheader", "body", "signature", "translations", "versions")


def _duration(value) -> str | None:
    return format_duration(value) if value is not None else None


# --- export ---------------------------------------------------------------------------


def _template_export(template: EmailTemplate | None) -> dict[str, Any] | None:
    if template is None:
        return None
    return {"name": template.name, **{field: getattr(template, field) for field in TEMPLATE_FIELDS}}


def _shape(journey: Journey | JourneyIn, *, status: str, category: str, filters: dict, exit_events: list,
           steps: list) -> dict[str, Any]:
    """The export's shape, from a saved journey or from an import's `JourneyIn` (same field names)."""
    return {
        "name": journey.name,
        "description": journey.description,
        "status": status,
        "trigger": journey.trigger,
        "custom_event_type": journey.custom_event_type,
        "trigger_config": dict(journey.trigger_config or {}),
        "filters": filters,
        "entry_policy": journey.entry_policy,
        "cooldown": _duration(journey.cooldown),
        "replace_running": journey.replace_running,
        "exit_events": exit_events,
        "goal_event": journey.goal_event,
        "attribution_window": _duration(journey.attribution_window),
        "holdout_percent": journey.holdout_percent,
        "message_class": journey.message_class,
        "category": category,
        "priority": journey.priority,
        "steps": steps,
    }


def _step_shape(step, *, config: dict, template: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "position": step.position,
        "name": step.name,
        "wait_kind": step.wait_kind,
        "wait": _duration(step.wait),
        "anchor": step.anchor,
        "wait_event": step.wait_event,
        "wait_max": _duration(step.wait_max),
        "kind": step.kind,
        "config": config,
        "template": template,
        "next": declared_next(step),
    }


def journey_export(journey: Journey) -> dict[str, Any]:
    """The journey as import JSON (JourneyIn), every field written out, steps by position."""
    steps = Step.objects.for_tenant(journey.tenant_id).filter(journey=journey).select_related("template")
    return _shape(journey, status=journey.status, category=journey.category, filters=dict(journey.filters or {}),
                  exit_events=list(journey.exit_events or []),
                  steps=[_step_shape(step, config=dict(step.config or {}), template=_template_export(step.template))
                         for step in steps.order_by("position")])


def _canonical(data: JourneyIn, *, status: str, category: str | None = None) -> dict[str, Any]:
    """What journey_export will say once `data` is imported: the shape both sides are compared in. A file
    that names no category keeps `category` (the journey's own, on an update), else gets the default."""
    def template(step) -> dict[str, Any] | None:
        return None if step.template is None else {
            "name": data.template_name(step),
            "subject": step.template.subject,
            "preheader": step.template.preheader,
            "body": step.template.body,
            "signature": step.template.signature,
            "translations": {locale: t.model_dump(exclude_none=True) for locale, t in step.template.translations.items()},
            "versions": [v.model_dump(exclude_none=True) for v in step.template.versions],
        }

    return _shape(data, status=status, category=data.category or category or _default_category(data),
                  filters=data.filters.model_dump(mode="json", exclude_none=True),
                  exit_events=list(data.exit_events),
                  steps=[_step_shape(step, config=step.config, template=template(step))
                         for step in sorted(data.steps, key=lambda s: s.position)])


def _default_category(data: JourneyIn) -> str:
    """A file that does not say (one exported before journeys had categories): from what it does."""
    texts = [data.name, data.description] + [text for step in data.steps if step.template is not None
                                             for text in (step.template.subject, step.template.body)]
    return category_default(kinds=[step.kind for step in data.steps], texts=texts)


# --- import ---------------------------------------------------------------------------


def _structural_changes(current: dict[str, Any], wanted: dict[str, Any], index: dict[int, int],
                        ) -> dict[str, list[str]]:
    """Paths (as the request wrote them) of every change beyond content."""
    blocked = "cannot change while customers are in this journey"
    fields: dict[str, list[str]] = {}
    for key, value in wanted.items():
        if key != "steps" and key not in CONTENT_KEYS and value != current[key]:
            fields[key] = [blocked]
    before = {step["position"]: step for step in current["steps"]}
    after = {step["position"]: step for step in wanted["steps"]}
    for position, step in after.items():
        path = f"steps.{index[position]}"
        if position not in before:
            fields[path] = [f"adds a step at position {position}; steps {blocked}"]
            continue
        for key, value in step.items():
            if key not in STEP_CONTENT_KEYS and value != before[position][key]:
                fields[f"{path}.{key}"] = [blocked]
    for position in sorted(set(before) - set(after)):
        fields.setdefault("steps", []).append(f"removes the step at position {position}; steps {blocked}")
    return fields


def _owned_templates(journey: Journey | None) -> dict[str, EmailTemplate]:
    """This journey's templates that no other journey uses, by name: safe to rewrite or delete."""
    if journey is None:
        return {}
    steps = Step.objects.for_tenant(journey.tenant_id)
    ids = set(steps.filter(journey=journey, template__isnull=False).values_list("template_id", flat=True))
    shared = set(steps.filter(template_id__in=ids).exclude(journey=journey).values_list("template_id", flat=True))
    templates = EmailTemplate.objects.for_tenant(journey.tenant_id).filter(pk__in=ids - shared)
    return {template.name: template for template in templates}


def _check_template_names(tenant: Tenant, wanted: dict[str, Any], owned: dict[str, EmailTemplate],
                          index: dict[int, int]) -> None:
    names = {step["template"]["name"]: step["position"] for step in wanted["steps"] if step["template"]}
    taken = EmailTemplate.objects.for_tenant(tenant).filter(name__in=names).exclude(
        pk__in=[t.pk for t in owned.values()])
    fields: dict[str, list[str]] = {}
    for template in taken:
        user = (Step.objects.for_tenant(tenant).filter(template=template).select_related("journey")
                .order_by("pk").first())
        where = f" (used by journey '{user.journey.name}')" if user else ""
        fields[f"steps.{index[names[template.name]]}.template.name"] = [
            f"'{template.name}' is already the name of another template in this store{where}; "
            "give this one its own name"]
    if fields:
        raise Conflict("journeys.template_name_taken", next(iter(fields.values()))[0],
                       dict(sorted(fields.items())))


def _assign(obj, values: dict[str, Any]) -> bool:
    changed = False
    for field, value in values.items():
        if getattr(obj, field) != value:
            setattr(obj, field, value)
            changed = True
    return changed


def _journey_values(wanted: dict[str, Any]) -> dict[str, Any]:
    values = {key: value for key, value in wanted.items() if key != "steps"}
    values["cooldown"] = parse_duration(values["cooldown"]) if values["cooldown"] else None
    values["attribution_window"] = parse_duration(values["attribution_window"])
    return values


def _write_steps(journey: Journey, wanted: dict[str, Any], owned: dict[str, EmailTemplate]) -> None:
    tenant_id = journey.tenant_id
    existing = {step.position: step for step in Step.objects.for_tenant(tenant_id).filter(journey=journey)}
    for spec in wanted["steps"]:
        template = None
        if spec["template"]:
            values = spec["template"]
            template = owned.get(values["name"]) or EmailTemplate(tenant_id=tenant_id, name=values["name"])
            if _assign(template, {field: values[field] for field in TEMPLATE_FIELDS}) or template.pk is None:
                template.save()
        step = existing.pop(spec["position"], None) or Step(tenant_id=tenant_id, journey=journey,
                                                             position=spec["position"])
        values = {
            "name": spec["name"], "wait_kind": spec["wait_kind"], "wait": parse_duration(spec["wait"]),
            "anchor": spec["anchor"], "wait_event": spec["wait_event"],
            "wait_max": parse_duration(spec["wait_max"]) if spec["wait_max"] else None,
            "kind": spec["kind"], "config": spec["config"], "template": template,
            "next_position": spec["next"] if isinstance(spec["next"], int) else None, "ends": spec["next"] == END,
        }
        if _assign(step, values) or step.pk is None:
            step.save()
    for step in existing.values():
        step.delete()  # checked by the caller: no deliveries
    # Templates this journey no longer uses go with it (a template used elsewhere is never owned).
    in_use = Step.objects.for_tenant(tenant_id).filter(template__isnull=False).values("template_id")
    EmailTemplate.objects.for_tenant(tenant_id).filter(pk__in=[t.pk for t in owned.values()]).exclude(
        pk__in=in_use).delete()


def survey_id_problem(tenant: Tenant | int, config: dict[str, Any]) -> str | None:
    """Why a step's `survey_id` names no survey of this store (another store's reads the same as a
    missing one), or None when it names one or is not set."""

    survey_id = (config or {}).get("survey_id")
    if survey_id is None:
        return None
    if (isinstance(survey_id, int) and not isinstance(survey_id, bool) and 0 < survey_id < 2**63
            and Survey.objects.for_tenant(tenant).filter(pk=survey_id).exists()):
        return None
    return f"survey_id {survey_id!r} is not a survey of this store: use one of its survey ids, or the survey's key"


def _check_surveys(tenant: Tenant, data: JourneyIn) -> None:
    fields = {f"steps.{i}.config.survey_id": [problem] for i, step in enumerate(data.steps)
              if (problem := survey_id_problem(tenant, step.config))}
    if fields:
        raise ServiceError("journeys.unknown_survey", next(iter(fields.values()))[0], fields)


def _check_segments(tenant: Tenant, data: JourneyIn) -> None:
    """Segment ids (entry filter, exit condition, trigger) must be this store's segments."""
    named = {"filters.segment": data.filters.segment, "filters.exit_segment": data.filters.exit_segment,
             "trigger_config.segment": data.trigger_config.get("segment")}
    known = set(Segment.objects.for_tenant(tenant).filter(pk__in=[v for v in named.values() if v])
                .values_list("pk", flat=True))
    fields = {where: [f"no segment with id {value} in this store: see Segments in the workspace"]
              for where, value in named.items() if value and value not in known}
    if fields:
        raise ServiceError("journeys.unknown_segment", next(iter(fields.values()))[0], fields)
def _check_references(tenant: Tenant, data: JourneyIn) -> None:
    """A discount step's pool and a check-in's signer must be the store's own."""
    fields = {f"steps.{i}.config.{key}": [problem] for i, step in enumerate(data.steps)
              for key, problem in reference_problems(tenant, step.kind, step.config).items()}
    if fields:
        raise ServiceError("journeys.unknown_reference", next(iter(fields.values()))[0], fields)


class NotReady(ServiceError):
    """A journey that would go live with problems (journeys.builder_checks.journey_problems): refused
    the same way whether it is activated in the builder or imported with "status": "active"."""

    def __init__(self, problems):
        n = len(problems)
        super().__init__("journeys.not_ready", f"{n} thing{'s' if n != 1 else ''} to fix before this journey can "
                         "go live:", {"status": [(f"step {p.position}: " if p.position is not None else "") + p.message
                                                for p in problems]})
        self.problems = problems


def activation_check(journey: Journey) -> None:
    """Raise NotReady unless `journey` may be live: the one check every way of activating runs."""
    # A genuine cycle: the builder's checks compare a journey with its export (journey_export, here).
    from .builder_checks import journey_problems  # noqa: PLC0415

    problems = journey_problems(journey)
    if problems:
        raise NotReady(problems)


def journey_import(*, tenant: Tenant, data: JourneyIn) -> tuple[Journey, bool]:
    """Create or update the tenant's journey named `data.name`. Returns (journey, created).

    One transaction. Imports of one name are serialized by an advisory lock, and the
    journey row is locked FOR UPDATE, which also holds back new enrollments into it (an
    enrollment's foreign key takes a KEY SHARE lock on the journey) until this commits, so
    "no customer is in it" stays true while the steps change. A new journey starts as
    `draft` unless `data.status` says otherwise; an updated one keeps its status unless
    told. See the module docstring for what an update may change.
    """
    index = {step.position: i for i, step in enumerate(data.steps)}
    _check_surveys(tenant, data)
    _check_segments(tenant, data)
    _check_references(tenant, data)
    with transaction.atomic():
        advisory_lock(tenant.pk, "journey-name", data.name)
        journey = Journey.objects.for_tenant(tenant).select_for_update().filter(name=data.name).first()
        if journey is None:
            wanted = _canonical(data, status=data.status or Journey.Status.DRAFT)
            _check_template_names(tenant, wanted, {}, index)
            journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, **_journey_values(wanted))
            _write_steps(journey, wanted, {})
            if journey.status == Journey.Status.ACTIVE:
                activation_check(journey)  # raising rolls the whole import back
            return journey, True

        wanted = _canonical(data, status=data.status or journey.status, category=journey.category)
        current = journey_export(journey)
        if wanted == current:
            return journey, False
        active = Enrollment.objects.for_tenant(tenant).filter(journey=journey, state=Enrollment.State.ACTIVE).count()
        if active:
            changes = _structural_changes(current, wanted, index)
            if changes:
                people = f"{active} customer{'s are' if active != 1 else ' is'}"
                raise Conflict(
                    "journeys.has_active_enrollments",
                    f"{people} in '{journey.name}' right now, so only its content can change (description, "
                    "status, step names and templates). To change its trigger, filters or steps, import it "
                    "under a new name and archive this one.",
                    changes,
                )
        removed = {step["position"] for step in current["steps"]} - {step["position"] for step in wanted["steps"]}
        history = (Delivery.objects.for_tenant(tenant).filter(step__journey=journey, step__position__in=removed)
                   .values("step__position").annotate(n=Count("pk")).order_by("step__position"))
        if history:
            raise Conflict(
                "journeys.step_has_history",
                "A step with send history cannot be removed: keep it, or import the journey under a new name "
                "and archive this one.",
                {"steps": [f"the step at position {row['step__position']} has {row['n']} deliveries; removing it "
                           "would delete that history" for row in history]},
            )
        owned = _owned_templates(journey)
        _check_template_names(tenant, wanted, owned, index)
        measured = [getattr(journey, field) for field in MEASURE_FIELDS]
        _assign(journey, _journey_values(wanted))
        journey.save()
        _write_steps(journey, wanted, owned)
        if journey.status == Journey.Status.ACTIVE:
            activation_check(journey)  # going live, or a live journey's new content: raising rolls it all back
        if [getattr(journey, field) for field in MEASURE_FIELDS] != measured:
            outcomes_forget(tenant=tenant, journey=journey)
        return journey, False


# --- the built-in library ---------------------------------------------------------------


def library_keys() -> list[str]:
    return sorted(path.stem for path in LIBRARY_DIR.glob("*.json"))


def library_load(key: str) -> JourneyIn:
    """A library journey, validated like any import (raises pydantic.ValidationError)."""
    text = (LIBRARY_DIR / f"{key}.json").read_text(encoding="utf-8")
    return JourneyIn.model_validate(json.loads(text, parse_float=Decimal))


@dataclasses.dataclass
class LibraryInstall:
    installed: dict[str, Journey] = dataclasses.field(default_factory=dict)
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)


def library_install(*, tenant: Tenant, keys: list[str] | None = None) -> LibraryInstall:
    """Install built-in journeys (all, or `keys`) into a store, as drafts. One transaction.

    Idempotent: a journey already installed from the same key (even renamed since) is left
    alone, and so is a journey of the store that has the library journey's name — the
    library never overwrites a marketer's work. Each is skipped with the reason.
    """
    available = library_keys()
    keys = available if keys is None else list(dict.fromkeys(keys))
    unknown = [key for key in keys if key not in available]
    if unknown:
        raise ServiceError("journeys.unknown_library_key", f"no library journey {unknown[0]!r}",
                           {"keys": [f"{key!r} is not one of {', '.join(available)}" for key in unknown]})
    loaded = {key: library_load(key) for key in keys}
    result = LibraryInstall()
    journeys = Journey.objects.for_tenant(tenant)
    with transaction.atomic():
        for key, data in loaded.items():
            advisory_lock(tenant.pk, "journey-library", key)
            existing = journeys.filter(library_key=key).first()
            if existing is not None:
                result.skipped[key] = f"already installed as '{existing.name}'"
                continue
            if journeys.filter(name=data.name).exists():
                result.skipped[key] = f"a journey named '{data.name}' already exists"
                continue
            try:
                journey, _ = journey_import(tenant=tenant, data=data.model_copy(update={"status": "draft"}))
            except ServiceError as exc:
                result.skipped[key] = exc.message
                continue
            journeys.filter(pk=journey.pk).update(library_key=key)
            journey.library_key = key
            result.installed[key] = journey
    return result
