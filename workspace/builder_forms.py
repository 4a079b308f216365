"""The builder's forms: plain inputs (a number and a unit, comma-separated SKUs) in, the values
journeys.builder's services take out. Validation messages come from journeys.definition where it
has them, so the builder and a JSON import say the same thing about the same mistake."""

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from django import forms
from pydantic import ValidationError

from journeys.builder_checks import EMAIL_KINDS, KIND_WORDS, TRIGGERS
from journeys.definition import (
    CheckInConfigIn,
    CommunityInviteConfigIn,
    ConditionConfigIn,
    DiscountCodeConfigIn,
    FiltersIn,
    WebhookConfigIn,
    event_name_problem,
    plain_value,
)
from journeys.models import Journey, Step
from lifecycle.numbers import whole_number

from .rule_fields import rule_form_fields, rule_from_data, rule_initial

RULE_INPUTS = tuple(rule_form_fields("cond_"))

CENT = Decimal("0.01")
UNITS = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 7 * 86400, "seconds": 1}
UNIT_CHOICES = [(u, u) for u in UNITS]
# No single wait longer than ten years: beyond any horizon, and timedelta stays far from its limits.
MAX_WAIT = dt.timedelta(days=3650)
TIMING_CHOICES = [
    ("previous", "after the previous step"),
    ("enrolled_at", "after the customer enters the journey"),
    ("placed_at", "after the order is placed"),
    ("paid_at", "after payment"),
    ("fulfilled_at", "after the order ships"),
    ("delivered_at", "after delivery"),
    ("event", "until an event happens, at most"),
]
# Kinds offered for new steps and changes: the ones the engine sends today.
KIND_CHOICES = [(k, KIND_WORDS[k]) for k in (Step.Kind.EMAIL, Step.Kind.FEEDBACK_REQUEST, Step.Kind.REFERRAL_INVITE,
                                            Step.Kind.AWARD_POINTS, Step.Kind.CONDITION, Step.Kind.AB_SPLIT,
                                            Step.Kind.WEBHOOK, Step.Kind.DISCOUNT_CODE, Step.Kind.CHECK_IN,
                                            Step.Kind.COMMUNITY_INVITE)]
# The kinds whose settings the `hook_*`, `code_*` and `signer` fields write (journeys.definition's models).
OUTBOUND_CONFIGS = {Step.Kind.WEBHOOK: WebhookConfigIn, Step.Kind.DISCOUNT_CODE: DiscountCodeConfigIn,
                    Step.Kind.CHECK_IN: CheckInConfigIn, Step.Kind.COMMUNITY_INVITE: CommunityInviteConfigIn}
# Which form field shows a config key's message.
OUTBOUND_FIELDS = {"url": "hook_url", "data": "hook_data", "source": "code_source", "pool": "code_pool",
                   "signer": "signer"}
COMMON_EXITS = [("order.placed", "another order is placed"), ("order.refunded", "the order is refunded"),
                ("order.cancelled", "the order is cancelled"), ("customer.unsubscribed", "the customer unsubscribes")]


def split_amount(delta: dt.timedelta | None) -> tuple[int, str]:
    """A duration as the biggest unit that writes it exactly: 14 days, 2 hours, 90 seconds."""
    seconds = int(delta.total_seconds()) if delta else 0
    for unit in ("days", "hours", "minutes"):
        if seconds % UNITS[unit] == 0:
            return seconds // UNITS[unit], unit
    return seconds, "seconds"


def _amount(form: forms.Form, amount_field: str, unit_field: str) -> dt.timedelta | None:
    amount, unit = form.cleaned_data.get(amount_field), form.cleaned_data.get(unit_field)
    if amount is None or unit not in UNITS:
        return None
    delta = dt.timedelta(seconds=amount * UNITS[unit])
    if delta > MAX_WAIT:
        form.add_error(amount_field, f"is longer than {MAX_WAIT.days} days")
        return None
    return delta


def _words(value: str) -> list[str]:
    return [part.strip() for part in (value or "").replace("\n", ",").split(",") if part.strip()]


class NewJourneyForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)
    trigger = forms.ChoiceField(choices=[(k, f"When {v[0]}") for k, v in TRIGGERS.items()
                                         if k != Journey.Trigger.CUSTOM])


class ImportForm(forms.Form):
    file = forms.FileField(help_text="A journey exported from here or from GET /api/v1/journeys/<id>.")

    MAX_BYTES = 1_000_000  # a 50-step journey with long emails is well under 200 KB

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError("is larger than 1 MB; a journey export is far smaller")
        return upload


class SettingsForm(forms.Form):
    """The journey's name, trigger, filters and rules."""

    name = forms.CharField(max_length=200, strip=True)
    description = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    trigger = forms.ChoiceField(choices=[(k, f"When {v[0]}") for k, v in TRIGGERS.items()])
    custom_event_type = forms.CharField(max_length=100, required=False, label="Event type (custom trigger)")
    min_total = forms.DecimalField(required=False, min_value=0, max_digits=14, decimal_places=2,
                                   label="Order total at least")
    max_total = forms.DecimalField(required=False, min_value=0, max_digits=14, decimal_places=2,
                                   label="Order total at most")
    skus = forms.CharField(required=False, max_length=5000, label="Containing any of these SKUs",
                           help_text="Comma-separated")
    product_ids = forms.CharField(required=False, max_length=5000, label="…or any of these product ids")
    min_order_count = forms.IntegerField(required=False, min_value=0, label="Customer has at least … orders")
    max_order_count = forms.IntegerField(required=False, min_value=0, label="…and at most … orders")
    locales = forms.CharField(required=False, max_length=500, label="Languages", help_text="e.g. de, fr-CA")
    consent_required = forms.BooleanField(required=False, label="Only customers who agreed to marketing email")
    segment = forms.TypedChoiceField(required=False, choices=[], coerce=int, empty_value=None,
                                     label="Only customers in the segment")
    exit_segment = forms.TypedChoiceField(required=False, choices=[], coerce=int, empty_value=None,
                                          label="Stop when the customer is in the segment")
    trigger_fact = forms.ChoiceField(required=False, label="The date", choices=[
        ("birthday", "the customer's birthday"), ("order_anniversary", "the anniversary of their first order"),
        ("days_since_last_order", "… days after their last order")])
    trigger_days = forms.IntegerField(required=False, min_value=1, max_value=3650, label="Days after the last order")
    trigger_segment = forms.TypedChoiceField(required=False, choices=[], coerce=int, empty_value=None,
                                             label="Entering the segment")
    trigger_topics = forms.CharField(required=False, max_length=1000, label="Support topics",
                                     help_text="Comma-separated, as your help desk sends them in the event's topic; "
                                               "blank: any topic")
    entry_policy = forms.ChoiceField(choices=[("once_per_order", "once per order"),
                                              ("once_per_customer", "once per customer"),
                                              ("cooldown", "at most once every … days per customer")])
    cooldown_days = forms.IntegerField(required=False, min_value=1, max_value=3650, label="Days between entries")
    exit_events = forms.MultipleChoiceField(choices=COMMON_EXITS, required=False,
                                            widget=forms.CheckboxSelectMultiple, label="Stop when")
    exit_custom = forms.CharField(required=False, max_length=1000, label="…or when these events happen")
    attribution_days = forms.IntegerField(min_value=1, max_value=365, label="Count an order as converted within … days")
    holdout_percent = forms.IntegerField(min_value=0, max_value=100, label="Holdout group (%)")
    message_class = forms.ChoiceField(choices=[("marketing", "Marketing (needs consent, has unsubscribe)"),
                                               ("transactional", "Transactional (order information)")])
    category = forms.ChoiceField(choices=Journey._meta.get_field("category").choices, label="Email category",
                                 help_text="Customers turn categories on and off on the preference page linked "
                                           "from every marketing email; transactional email is never held back.")
    priority = forms.IntegerField(min_value=-1000, max_value=1000,
                                  help_text="Higher wins when two journeys' emails compete for the cap.")
    replace_running = forms.BooleanField(required=False, label="A newer order restarts it")

    STRUCTURE = ("trigger", "custom_event_type", "trigger_fact", "trigger_days", "trigger_segment", "trigger_topics",
                 "segment", "exit_segment", "min_total", "max_total", "skus", "product_ids", "min_order_count",
                 "max_order_count", "locales", "consent_required", "entry_policy", "cooldown_days", "exit_events",
                 "exit_custom", "attribution_days", "holdout_percent", "message_class", "priority", "replace_running")

    def __init__(self, *args, structure_locked: bool = False, segments: list[tuple[int, str]] | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.structure_locked = structure_locked
        for name in ("segment", "exit_segment", "trigger_segment"):
            self.fields[name].choices = [("", "—")] + list(segments or [])
        if structure_locked:
            for name in self.STRUCTURE:
                self.fields[name].disabled = True

    @classmethod
    def initial_for(cls, journey: Journey) -> dict[str, Any]:
        f = journey.filters or {}
        return {
            "name": journey.name, "description": journey.description, "trigger": journey.trigger,
            "custom_event_type": journey.custom_event_type, "min_total": f.get("min_total"),
            "max_total": f.get("max_total"), "skus": ", ".join(f.get("skus") or []),
            "product_ids": ", ".join(f.get("product_ids") or []), "min_order_count": f.get("min_order_count"),
            "max_order_count": f.get("max_order_count"), "locales": ", ".join(f.get("locales") or []),
            "consent_required": f.get("consent") == "required", "entry_policy": journey.entry_policy,
            "segment": f.get("segment"), "exit_segment": f.get("exit_segment"),
            "trigger_fact": (journey.trigger_config or {}).get("fact"),
            "trigger_days": (journey.trigger_config or {}).get("days"),
            "trigger_segment": (journey.trigger_config or {}).get("segment"),
            "trigger_topics": ", ".join((journey.trigger_config or {}).get("topics") or []),
            "cooldown_days": journey.cooldown.days if journey.cooldown else None,
            "exit_events": [e for e in journey.exit_events or [] if e in dict(COMMON_EXITS)],
            "exit_custom": ", ".join(e for e in journey.exit_events or [] if e not in dict(COMMON_EXITS)),
            "attribution_days": max(1, journey.attribution_window.days), "holdout_percent": journey.holdout_percent,
            "message_class": journey.message_class, "category": journey.category, "priority": journey.priority,
            "replace_running": journey.replace_running,
        }

    def clean(self):
        data = super().clean()
        if self.structure_locked or self.errors:
            return data
        trigger, event = data.get("trigger"), (data.get("custom_event_type") or "").strip()
        if trigger == Journey.Trigger.CUSTOM:
            problem = event_name_problem(event) if event else "name the event that starts the journey, e.g. support.resolved"
            if problem:
                self.add_error("custom_event_type", problem)
        data["custom_event_type"] = event if trigger == Journey.Trigger.CUSTOM else ""
        data["trigger_config"] = self._trigger_config(trigger, data)
        if data.get("entry_policy") == "cooldown" and not data.get("cooldown_days"):
            self.add_error("cooldown_days", "is needed when customers may enter again after a while")
        exits = list(data.get("exit_events") or [])
        for name in _words(data.get("exit_custom", "")):
            problem = event_name_problem(name)
            if problem:
                self.add_error("exit_custom", problem)
            elif name not in exits:
                exits.append(name)
        data["exit_list"] = exits
        raw = {"min_total": data.get("min_total"), "max_total": data.get("max_total"),
               "skus": _words(data.get("skus", "")) or None, "product_ids": _words(data.get("product_ids", "")) or None,
               "min_order_count": data.get("min_order_count"), "max_order_count": data.get("max_order_count"),
               "locales": _words(data.get("locales", "")) or None,
               "consent": "required" if data.get("consent_required") else None,
               "segment": data.get("segment"), "exit_segment": data.get("exit_segment")}
        try:
            # Amounts as the API writes them ("50.00"), so a save compares equal to an import.
            parsed = FiltersIn.model_validate({k: (str(v.quantize(CENT)) if isinstance(v, Decimal) else v)
                                               for k, v in raw.items()})
            data["filters"] = parsed.model_dump(mode="json", exclude_none=True)
        except ValidationError as exc:
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else None
                field = field if field in self.fields else None
                self.add_error(field, f"{error['msg'].removeprefix('Value error, ')}")
        return data

    def _trigger_config(self, trigger: str, data: dict[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if trigger == Journey.Trigger.DATE:
            config = {"fact": data.get("trigger_fact") or "birthday"}
            if config["fact"] == "days_since_last_order":
                if not data.get("trigger_days"):
                    self.add_error("trigger_days", "say how many days after the last order, such as 60")
                config["days"] = data.get("trigger_days")
        elif trigger == Journey.Trigger.SEGMENT_ENTERED:
            if not data.get("trigger_segment"):
                self.add_error("trigger_segment", "choose the segment (add one under Segments)")
            config = {"segment": data.get("trigger_segment")}
        elif trigger == Journey.Trigger.SUPPORT_CONTACTED:
            config = {"topics": _words(data.get("trigger_topics", ""))}
        return config

    def values(self) -> dict[str, Any]:
        """What journey_settings_update takes: words and category always, structure when it may change."""
        data = self.cleaned_data
        # The category may change any time, like the words: it decides only whether later emails may go.
        values = {"name": data["name"], "description": data.get("description", ""), "category": data["category"]}
        if self.structure_locked:
            return values
        values.update({
            "trigger": data["trigger"], "custom_event_type": data["custom_event_type"],
            "trigger_config": data["trigger_config"], "filters": data["filters"],
            "entry_policy": data["entry_policy"],
            "cooldown": dt.timedelta(days=data["cooldown_days"]) if data["entry_policy"] == "cooldown" else None,
            "exit_events": data["exit_list"], "attribution_window": dt.timedelta(days=data["attribution_days"]),
            "holdout_percent": data["holdout_percent"], "message_class": data["message_class"],
            "priority": data["priority"], "replace_running": data["replace_running"],
        })
        return values


class AddStepForm(forms.Form):
    kind = forms.ChoiceField(choices=KIND_CHOICES, initial=Step.Kind.EMAIL)
    wait_amount = forms.IntegerField(min_value=0, initial=1, label="Wait")
    wait_unit = forms.ChoiceField(choices=UNIT_CHOICES, initial="days")

    def wait(self) -> dt.timedelta | None:
        return _amount(self, "wait_amount", "wait_unit")


class StepForm(forms.Form):
    """One step: when it runs, what it does, and its email."""

    name = forms.CharField(max_length=200, required=False, strip=True)
    timing = forms.ChoiceField(choices=TIMING_CHOICES, label="Runs")
    wait_amount = forms.IntegerField(min_value=0, label="Wait")
    wait_unit = forms.ChoiceField(choices=UNIT_CHOICES)
    wait_event = forms.CharField(max_length=100, required=False, label="The event",
                                 help_text="e.g. order.delivered, support.resolved")
    give_up_days = forms.IntegerField(min_value=1, max_value=365, required=False,
                                      label="Give up waiting for the order after … days",
                                      help_text="Blank: 30 days. The step is skipped if the order time never comes.")
    kind = forms.ChoiceField(choices=KIND_CHOICES)
    survey = forms.ChoiceField(required=False, choices=[], label="Survey")
    points = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, label="Points to award")
    points_reason = forms.CharField(required=False, max_length=200, label="Reason shown in the ledger")
    cond_then = forms.TypedChoiceField(required=False, choices=[], coerce=int, empty_value=None, label="then go to")
    cond_else = forms.TypedChoiceField(required=False, choices=[], coerce=int, empty_value=None,
                                       label="otherwise go to")
    next = forms.ChoiceField(required=False, choices=[], label="Then",
                             help_text="Where the customer goes after this step: an arm of a split ends or rejoins "
                                       "here.")
    variants = forms.CharField(required=False, max_length=500, label="Branches",
                               help_text="step:weight pairs, e.g. 3:50, 4:50. Each customer gets one branch: from its "
                                         "step up to the next branch's step.")
    ab_then = forms.TypedChoiceField(required=False, choices=[], coerce=int, empty_value=None,
                                     label="After their branch, customers go on at")
    hook_url = forms.CharField(required=False, max_length=2000, label="Address",
                               help_text="https://… — the webhook's endpoint, the code webhook or the community page")
    hook_data = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3}),
                                label="Data sent with it (JSON object, optional)",
                                help_text='e.g. {"sms_template": "brew-guide"}: the payload\'s "data"')
    code_source = forms.ChoiceField(required=False, choices=[("pool", "a loyalty reward's pool of codes"),
                                                             ("webhook", "the store's webhook")], label="Code from")
    code_pool = forms.ChoiceField(required=False, choices=[], label="Pool")
    signer = forms.ChoiceField(required=False, choices=[], label="Signed by",
                               help_text="From shows their name; replies go to their address.")
    subject = forms.CharField(max_length=300, required=False, strip=False)
    preheader = forms.CharField(max_length=300, required=False, strip=False,
                                help_text="The grey line inboxes show after the subject.")
    body = forms.CharField(max_length=100_000, required=False, strip=False, widget=forms.Textarea(attrs={"rows": 14}))
    signature = forms.CharField(max_length=200, required=False, help_text="Who signs it, e.g. Lena, founder")

    STRUCTURE = ("timing", "wait_amount", "wait_unit", "wait_event", "give_up_days", "kind", "survey", "points",
                 "points_reason", *RULE_INPUTS, "cond_then", "cond_else", "variants", "ab_then", "next",
                 "hook_url", "hook_data", "code_source", "code_pool", "signer")
    CONTENT = ("subject", "preheader", "body", "signature")

    def __init__(self, *args, step: Step, positions: list[int], surveys: list[tuple[str, str]],
                 structure_locked: bool = False, email_positions: list[int] | None = None, pools: list[str] = (),
                 members: list[tuple[str, str]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["code_pool"].choices = [("", "choose a reward with uploaded codes")] + [(p, p) for p in pools]
        self.fields["signer"].choices = [("", "choose a team member")] + list(members)
        self.step, self.structure_locked = step, structure_locked
        self.fields.update(rule_form_fields("cond_", steps=[(p, f"step {p}") for p in email_positions or []
                                                            if p != step.position]))
        later = [(p, f"step {p}") for p in positions if p > step.position]
        others = [(p, f"step {p}") for p in positions if p != step.position]
        self.fields["cond_then"].choices = [("", "the end")] + others
        self.fields["cond_else"].choices = [("", "the end")] + others
        self.fields["next"].choices = [("", "the next step below"), ("end", "the end of the journey")] + others
        self.fields["ab_then"].choices = [("", "the step after the last branch's step (or the end)")] + later
        self.fields["survey"].choices = [("", "choose a survey")] + surveys
        if step.kind not in dict(KIND_CHOICES):  # an imported kind the builder does not offer: keep it selectable
            self.fields["kind"].choices = [*KIND_CHOICES, (step.kind, KIND_WORDS.get(step.kind, step.kind))]
        if structure_locked:
            for name in self.STRUCTURE:
                self.fields[name].disabled = True

    @classmethod
    def initial_for(cls, step: Step) -> dict[str, Any]:
        config = step.config or {}
        if step.wait_kind == Step.WaitKind.UNTIL_EVENT:
            amount, unit = split_amount(step.wait_max or step.wait)
            timing = "event"
        else:
            amount, unit = split_amount(step.wait)
            timing = step.anchor if step.wait_kind == Step.WaitKind.AFTER_ANCHOR and step.anchor else "previous"
        template = step.template if step.template_id else None
        return {
            "name": step.name, "timing": timing, "wait_amount": amount, "wait_unit": unit,
            "wait_event": step.wait_event,
            "give_up_days": step.wait_max.days if step.wait_max and step.wait_kind == Step.WaitKind.AFTER_ANCHOR
            else None,
            "kind": step.kind, "survey": str(config.get("survey") or ""), "points": config.get("points"),
            "points_reason": config.get("reason", ""),
            **(rule_initial(config, "cond_") if step.kind == Step.Kind.CONDITION and config.get("field") else {}),
            "cond_then": config.get("then") if isinstance(config.get("then"), int) else None,
            "cond_else": config.get("else") if isinstance(config.get("else"), int) else None,
            "next": "end" if step.ends else step.next_position or "",
            "ab_then": config.get("then") if step.kind == Step.Kind.AB_SPLIT else None,
            "variants": ", ".join(f"{v.get('step')}:{v.get('weight', 1)}" for v in config.get("variants") or []
                                  if isinstance(v, dict)),
            "hook_url": config.get("url", ""),
            "hook_data": json.dumps(config["data"]) if config.get("data") else "",
            "code_source": config.get("source", "pool"), "code_pool": config.get("pool", ""),
            "signer": config.get("signer", ""),
            "subject": template.subject if template else "", "preheader": template.preheader if template else "",
            "body": template.body if template else "", "signature": template.signature if template else "",
        }

    def clean(self):
        data = super().clean()
        if self.structure_locked or self.errors:
            return data
        timing, kind = data.get("timing"), data.get("kind")
        wait = _amount(self, "wait_amount", "wait_unit")
        values: dict[str, Any] = {"wait_kind": Step.WaitKind.AFTER_PREVIOUS, "wait": wait, "anchor": "",
                                  "wait_event": "", "wait_max": None, "kind": kind}
        if timing == "event":
            event = (data.get("wait_event") or "").strip()
            problem = event_name_problem(event) if event else "name the event to wait for"
            if problem:
                self.add_error("wait_event", problem)
            if not wait:
                self.add_error("wait_amount", "say how long to wait for the event at most")
            values.update(wait_kind=Step.WaitKind.UNTIL_EVENT, wait=dt.timedelta(0), wait_event=event, wait_max=wait)
        elif timing != "previous":
            give_up = data.get("give_up_days")
            values.update(wait_kind=Step.WaitKind.AFTER_ANCHOR, anchor=timing,
                          wait_max=dt.timedelta(days=give_up) if give_up and timing != "enrolled_at" else None)
        values["config"] = self._config(kind, data)
        chosen = data.get("next") or ""
        branches = kind in (Step.Kind.CONDITION, Step.Kind.AB_SPLIT)
        values["ends"] = chosen == "end" and not branches
        values["next_position"] = whole_number(chosen, minimum=1) if not branches else None
        data["structure"] = values
        return data

    def _config(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        current = dict(self.step.config or {}) if self.step.kind == kind else {}
        if kind == Step.Kind.FEEDBACK_REQUEST:
            if not data.get("survey"):
                self.add_error("survey", "choose which survey the email asks")
            return {"survey": data.get("survey")} if data.get("survey") else {}
        if kind == Step.Kind.AWARD_POINTS:
            if not data.get("points"):
                self.add_error("points", "say how many points to award")
            config = {"points": data.get("points")}
            if data.get("points_reason"):
                config["reason"] = data["points_reason"]
            return config
        if kind == Step.Kind.CONDITION:
            return self._condition(data)
        if kind == Step.Kind.AB_SPLIT:
            variants = []
            for pair in _words(data.get("variants", "")):
                step, _, weight = pair.partition(":")
                try:
                    variants.append({"step": int(step), "weight": int(weight or 1)})
                except ValueError:
                    self.add_error("variants", f"“{pair}” is not step:weight, such as 3:50")
            if data.get("ab_then") is not None:
                return {"variants": variants, "then": data["ab_then"]}
            return {"variants": variants}
        if kind in OUTBOUND_CONFIGS:
            return self._outbound(kind, data, current)
        if kind in EMAIL_KINDS:
            return {k: v for k, v in current.items() if k == "first_name_fallback"}
        return current

    def _outbound(self, kind: str, data: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
        """A webhook, discount-code, check-in or community step's settings, checked by the same models as an
        import (journeys.definition), each message beside its field."""
        config: dict[str, Any] = {k: v for k, v in current.items() if k == "first_name_fallback"}
        url = (data.get("hook_url") or "").strip()
        if kind in (Step.Kind.WEBHOOK, Step.Kind.COMMUNITY_INVITE) and url:
            config["url"] = url
        if kind == Step.Kind.WEBHOOK:
            raw = (data.get("hook_data") or "").strip()
            if raw:
                try:
                    config["data"] = json.loads(raw)
                except ValueError:
                    self.add_error("hook_data", 'is not JSON: write an object such as {"sms_template": "thanks"}')
                    return {}
                if not isinstance(config["data"], dict):
                    self.add_error("hook_data", 'must be a JSON object, such as {"sms_template": "thanks"}')
                    return {}
        elif kind == Step.Kind.DISCOUNT_CODE:
            config["source"] = data.get("code_source") or "pool"
            if config["source"] == "pool" and data.get("code_pool"):
                config["pool"] = data["code_pool"]
            if config["source"] == "webhook" and url:
                config["url"] = url
        elif kind == Step.Kind.CHECK_IN and data.get("signer"):
            config["signer"] = data["signer"]
        try:
            parsed = OUTBOUND_CONFIGS[kind].model_validate(config)
        except ValidationError as exc:
            for error in exc.errors():
                key = str(error["loc"][0]) if error["loc"] else ""
                message = error["msg"].removeprefix("Value error, ")
                self.add_error(OUTBOUND_FIELDS.get(key, "kind"), "is required" if error["type"] == "missing"
                               else message)
            return {}
        return plain_value(parsed.model_dump(mode="json", exclude_unset=True))

    def _condition(self, data: dict[str, Any]) -> dict[str, Any]:
        current = self.step.config if self.step.kind == Step.Kind.CONDITION else {}
        rule = rule_from_data(data, "cond_", self)
        if rule is None and not self.errors:
            if not (current.get("all") or current.get("any")):
                self.add_error("cond_field", "choose what to test")
                return {}
            # Several rules (written in JSON): the builder keeps them and changes where the arms go.
            rule = {k: v for k, v in current.items() if k in ("all", "any")}
        if rule is None:
            return {}
        config: dict[str, Any] = dict(rule)
        for key in ("then", "else"):
            config[key] = data.get(f"cond_{key}") if data.get(f"cond_{key}") is not None else "end"
        try:
            parsed = ConditionConfigIn.model_validate(config)
        except ValidationError as exc:
            for error in exc.errors():
                self.add_error("cond_value", error["msg"].removeprefix("Value error, "))
            return {}
        return plain_value(parsed.model_dump(mode="json", by_alias=True, exclude_unset=True))

    def content(self) -> dict[str, str]:
        return {field: self.cleaned_data.get(field) or "" for field in self.CONTENT}

    def values(self) -> dict[str, Any]:
        values = {"name": self.cleaned_data.get("name", "")}
        if not self.structure_locked:
            values.update(self.cleaned_data["structure"])
        return values


class ContentForm(forms.Form):
    """Just the email: what the preview and the test send read."""

    subject = forms.CharField(max_length=300, required=False, strip=False)
    preheader = forms.CharField(max_length=300, required=False, strip=False)
    body = forms.CharField(max_length=100_000, required=False, strip=False)
    signature = forms.CharField(max_length=200, required=False)
    customer = forms.CharField(max_length=20, required=False)

    def content(self) -> dict[str, str]:
        return {field: self.cleaned_data.get(field) or "" for field in ("subject", "preheader", "body", "signature")}
