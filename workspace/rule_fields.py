"""One rule of the conditions' vocabulary (journeys.rules) as plain form inputs, for the builder's yes/no
split and the segment editor alike: what to test, how, against what, and the words that qualify it
(which SKU, which event, within how many days, which earlier email)."""

from typing import Any

from django import forms
from pydantic import ValidationError

from journeys.builder_checks import FIELD_WORDS
from journeys.rules import RULE_FIELDS, RuleIn

OPS = [("==", "is"), ("!=", "is not"), (">", "is more than"), (">=", "is at least"), ("<", "is less than"),
       ("<=", "is at most")]
WHAT_KINDS = [("sku", "SKU"), ("product", "product id"), ("collection", "collection")]
WHEN_CHOICES = [("ever", "ever"), ("this_order", "in this order"), ("within", "within … days")]
# Fields a segment may use: the ones about the customer alone.
SEGMENT_FIELDS = [f for f in RULE_FIELDS if f not in ("opened_step", "clicked_step", "ordered_since_enrollment",
                                                      "trigger_data")]


def field_choices(fields=None) -> list[tuple[str, str]]:
    return [(name, FIELD_WORDS.get(name, name)) for name in (fields or RULE_FIELDS)]


def rule_form_fields(prefix: str, *, fields=None, steps: list[tuple[int, str]] | None = None) -> dict[str, forms.Field]:
    """The inputs of one rule, named `<prefix>field`, `<prefix>op`…"""
    return {
        f"{prefix}field": forms.ChoiceField(required=False, choices=[("", "—")] + field_choices(fields),
                                            label="If the customer's"),
        f"{prefix}op": forms.ChoiceField(required=False, choices=OPS, label="", initial="=="),
        f"{prefix}value": forms.CharField(required=False, max_length=100, label="value",
                                          help_text="yes / no for bought, opened, clicked, sent an event"),
        f"{prefix}what_kind": forms.ChoiceField(required=False, choices=WHAT_KINDS, label="Bought: a"),
        f"{prefix}what": forms.CharField(required=False, max_length=255, label="SKU, product, collection, event or "
                                                                              "field of the trigger",
                                         help_text="e.g. BEANS-1KG, feature.used, topic"),
        f"{prefix}when": forms.ChoiceField(required=False, choices=WHEN_CHOICES, label="When"),
        f"{prefix}days": forms.IntegerField(required=False, min_value=1, max_value=3650, label="Within … days"),
        f"{prefix}data": forms.CharField(required=False, max_length=500, label="Event data matches",
                                         help_text="e.g. name=export"),
        f"{prefix}step": forms.TypedChoiceField(required=False, choices=[("", "—")] + (steps or []), coerce=int,
                                                empty_value=None, label="Email step"),
    }


def _value(kind: str, raw: str) -> Any:
    if kind == "int":
        return int(raw)
    if kind == "bool":
        if raw.lower() not in ("", "true", "false", "yes", "no"):
            raise ValueError("must be yes or no")
        return raw.lower() in ("", "true", "yes")
    if kind == "any":
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


def rule_from_data(data: dict[str, Any], prefix: str, form: forms.Form) -> dict[str, Any] | None:
    """The rule the inputs describe, validated as journeys.rules.RuleIn; errors go to the form.
    None: no field chosen (or an error)."""
    field = data.get(f"{prefix}field")
    if not field:
        return None
    kind = RULE_FIELDS[field]
    raw = (data.get(f"{prefix}value") or "").strip()
    try:
        value = _value(kind, raw)
    except ValueError:
        form.add_error(f"{prefix}value", "must be a whole number" if kind == "int" else "must be yes or no")
        return None
    rule: dict[str, Any] = {"field": field, "op": data.get(f"{prefix}op") or "==", "value": value}
    what = (data.get(f"{prefix}what") or "").strip()
    if field == "bought":
        rule[data.get(f"{prefix}what_kind") or "sku"] = what or None
        rule["when"] = data.get(f"{prefix}when") or "ever"
        if rule["when"] == "within":
            rule["days"] = data.get(f"{prefix}days")
    elif field == "did_event":
        rule["event"] = what or None
        if data.get(f"{prefix}days"):
            rule["days"] = data[f"{prefix}days"]
        pairs = [p.strip() for p in (data.get(f"{prefix}data") or "").split(",") if p.strip()]
        if pairs:
            rule["data"] = {k.strip(): _value("any", v.strip()) for k, _, v in (p.partition("=") for p in pairs)}
    elif field in ("opened_step", "clicked_step"):
        rule["step"] = data.get(f"{prefix}step")
    elif field == "trigger_data":
        rule["key"] = what or None
    try:
        parsed = RuleIn.model_validate({k: v for k, v in rule.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "value"
            name = {"sku": "what", "product": "what", "collection": "what", "event": "what", "key": "what"}.get(
                where, where)
            form.add_error(f"{prefix}{name}" if f"{prefix}{name}" in form.fields else f"{prefix}value",
                           error["msg"].removeprefix("Value error, "))
        return None
    return parsed.model_dump(mode="json", exclude_none=True)


def rule_initial(rule: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The inputs that show a stored rule."""
    value = rule.get("value")
    what_kind = next((k for k in ("sku", "product", "collection") if rule.get(k)), "sku")
    return {
        f"{prefix}field": rule.get("field"), f"{prefix}op": rule.get("op", "=="),
        f"{prefix}value": ("yes" if value else "no") if isinstance(value, bool) else value,
        f"{prefix}what_kind": what_kind,
        f"{prefix}what": rule.get(what_kind) or rule.get("event") or rule.get("key") or "",
        f"{prefix}when": rule.get("when") or "ever", f"{prefix}days": rule.get("days"),
        f"{prefix}data": ", ".join(f"{k}={v}" for k, v in (rule.get("data") or {}).items()),
        f"{prefix}step": rule.get("step"),
    }
