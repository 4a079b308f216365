"""The store's programmes in settings: loyalty (earning, pending period, expiry, tiers, rewards),
the referral programme, and the surveys' wording, follow-ups and alert recipients.

Everyone in the store reads them; a marketer or an owner changes them. A form that does not
validate answers 400 with each field's message on the page and writes nothing; a valid one goes
to the feature app's service (`loyalty.configure`, `referrals.configure`, `feedback.configure`),
one transaction with a `store.*` event naming who changed what. Tiers, rewards and surveys are
looked up in this store before the role check, so another store's id is a 404 for everyone."""

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from lifecycle.errors import ServiceError
from lifecycle.models import Tenant
from lifecycle.numbers import whole_number
from loyalty.configure import (
    loyalty_program_save,
    loyalty_reward_save,
    loyalty_reward_set_active,
    loyalty_tier_remove,
    loyalty_tier_save,
)
from loyalty.models import Program as LoyaltyProgram
from loyalty.models import Reward as LoyaltyReward
from loyalty.models import Tier
from workspace.access import workspace_view
from workspace.customers import object_action, refuse_write

from .program_forms import (
    MARKETER,
    READ_ONLY_NOTE,
    PageForm,
    PageMeta,
    apply_service_error,
    changed_by,
    within,
)
from .referral_program import referral_program
from .surveys import survey_edit, surveys

CODE_PREFIX = re.compile(r"^[A-Z0-9-]{0,20}$")

# Bounds a person would not mean to exceed; past them the form says so instead of storing a typo.
MAX_POINTS_PER_UNIT = Decimal("1000")


MAX_BONUS_POINTS = 1_000_000


MAX_PENDING_DAYS = 365


MAX_EXPIRY_MONTHS = 120


MAX_TIER_MULTIPLIER = Decimal("10")


MAX_REWARD_COST = 10_000_000


EVENT_TYPE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


class LoyaltyProgramForm(PageForm):
    event_bonuses_text = forms.CharField(
        label="Points for your own events", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, “event type = points”, such as “newsletter.signed_up = 50”: a storefront "
                  "event sent to POST /api/v1/events earns them once per event.")

    class Meta(PageMeta):
        model = LoyaltyProgram
        fields = ["enabled", "points_per_unit", "pending_days", "first_order_bonus", "review_bonus", "birthday_bonus",
                  "tier_basis", "tier_downgrade", "expiry_months", "expiry_warning_days"]
        labels = {"enabled": "Programme on", "points_per_unit": "Points per unit of currency",
                  "pending_days": "Pending period (days)", "first_order_bonus": "First-order bonus",
                  "review_bonus": "Published-review bonus", "birthday_bonus": "Birthday bonus",
                  "tier_basis": "Tiers qualify on", "tier_downgrade": "Losing a tier",
                  "expiry_months": "Points expire after (months without activity)",
                  "expiry_warning_days": "Warn this many days before"}
        help_texts = {
            "enabled": "Off: orders earn nothing and the customer's page shows no rewards; balances stay.",
            "points_per_unit": f"Per 1 unit paid, net of discounts and refunds, before the tier's multiplier. "
                               f"0 to {MAX_POINTS_PER_UNIT}.",
            "pending_days": f"Order points wait this long (your return window) before they can be spent. "
                            f"0 to {MAX_PENDING_DAYS}.",
            "expiry_months": f"0: points never expire. At most {MAX_EXPIRY_MONTHS}.",
            "expiry_warning_days": "loyalty.points_expiring goes out this long before; a journey on that event "
                                   "sends the warning email.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        bonuses = self.instance.event_bonuses or {}
        self.fields["event_bonuses_text"].initial = "\n".join(f"{k} = {v}" for k, v in bonuses.items())

    def clean_points_per_unit(self):
        return within(self.cleaned_data.get("points_per_unit"), 0, MAX_POINTS_PER_UNIT,
                       f"Choose between 0 and {MAX_POINTS_PER_UNIT} points per unit.")

    def clean_pending_days(self):
        return within(self.cleaned_data.get("pending_days"), 0, MAX_PENDING_DAYS,
                       f"Choose between 0 and {MAX_PENDING_DAYS} days.")

    def _bonus(self, name: str) -> int:
        return within(self.cleaned_data.get(name), 0, MAX_BONUS_POINTS,
                       f"Choose between 0 and {MAX_BONUS_POINTS:,} points.")

    def clean_first_order_bonus(self):
        return self._bonus("first_order_bonus")

    def clean_review_bonus(self):
        return self._bonus("review_bonus")

    def clean_birthday_bonus(self):
        return self._bonus("birthday_bonus")

    def clean_expiry_months(self):
        return within(self.cleaned_data.get("expiry_months"), 0, MAX_EXPIRY_MONTHS,
                       f"Choose between 0 (never) and {MAX_EXPIRY_MONTHS} months.")

    def clean_event_bonuses_text(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for n, line in enumerate((self.cleaned_data.get("event_bonuses_text") or "").splitlines(), start=1):
            if not line.strip():
                continue
            event, sep, points = (part.strip() for part in line.partition("="))
            if not sep or not EVENT_TYPE.match(event):
                raise forms.ValidationError(f"Line {n}: write “event type = points”, the event type in letters, "
                                            "digits, dots, dashes or underscores.")
            if whole_number(points, minimum=1, maximum=MAX_BONUS_POINTS) is None:
                raise forms.ValidationError(f"Line {n}: the points are a whole number from 1 to "
                                            f"{MAX_BONUS_POINTS:,}.")
            if event in found:
                raise forms.ValidationError(f"Line {n}: “{event}” is listed twice.")
            found[event] = int(points)
        return found

    def clean(self):
        data = super().clean()
        months, warning = data.get("expiry_months"), data.get("expiry_warning_days")
        if warning is not None and warning > MAX_PENDING_DAYS:
            self.add_error("expiry_warning_days", f"Choose at most {MAX_PENDING_DAYS} days.")
        elif months and warning is not None and warning >= months * 30:
            self.add_error("expiry_warning_days", f"The warning must go out before the points expire: fewer than "
                                                  f"{months * 30} days for {months} month{'s' if months > 1 else ''}.")
        return data

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["event_bonuses"] = data.pop("event_bonuses_text")
        return data


class TierForm(PageForm):
    name_required = "Give the tier a name, such as Gold."

    class Meta(PageMeta):
        model = Tier
        fields = ["name", "threshold", "multiplier", "perks"]
        labels = {"threshold": "Qualifies from", "multiplier": "Points multiplier", "perks": "Perks"}
        help_texts = {"threshold": "Points earned, or money spent, over the last 12 months (the programme's "
                                   "“tiers qualify on”).",
                      "multiplier": f"Order points × this: 1.5 gives half as much again. 0 to {MAX_TIER_MULTIPLIER}.",
                      "perks": "Shown on the customer's loyalty page."}
        widgets = {"perks": forms.Textarea(attrs={"rows": 2})}

    def clean_name(self):
        name = (self.cleaned_data.get("name") or "").strip()
        if not name:
            raise forms.ValidationError("Give the tier a name, such as Gold.")
        return name

    def clean_threshold(self):
        return within(self.cleaned_data.get("threshold"), 0, Decimal("999999999999999"),
                       "Choose 0 or more.")

    def clean_multiplier(self):
        return within(self.cleaned_data.get("multiplier"), 0, MAX_TIER_MULTIPLIER,
                       f"Choose between 0 and {MAX_TIER_MULTIPLIER}.")


class RewardForm(PageForm):
    name_required = "Give the reward a name customers understand, such as “€5 off”."

    class Meta(PageMeta):
        model = LoyaltyReward
        fields = ["name", "kind", "cost", "value", "product_external_id", "code_source", "code_prefix"]
        labels = {"cost": "Points it takes", "value": "Value", "product_external_id": "Free product's id",
                  "code_source": "Codes", "code_prefix": "Code prefix"}
        help_texts = {"cost": "", "value": "A fixed discount: the amount in the store's currency. A percentage discount: "
                               "1 to 100. Otherwise unused.",
                      "product_external_id": "A free product: its id in your store.",
                      "code_source": "A pool: upload codes with POST /api/v1/loyalty/rewards/<id>/codes.",
                      "code_prefix": "Generated codes start with this (letters, digits, dashes)."}

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["kind"].choices = [("fixed_discount", "Fixed discount"), ("percent_discount", "Percentage off"),
                                       ("free_shipping", "Free shipping"), ("free_product", "Free product")]
        self.fields["value"].required = False

    def clean_name(self):
        name = (self.cleaned_data.get("name") or "").strip()
        if not name:
            raise forms.ValidationError("Give the reward a name customers understand, such as “€5 off”.")
        return name

    def clean_cost(self):
        return within(self.cleaned_data.get("cost"), 1, MAX_REWARD_COST,
                       f"Choose between 1 and {MAX_REWARD_COST:,} points.")

    def clean_code_prefix(self):
        prefix = (self.cleaned_data.get("code_prefix") or "").strip().upper()
        if not CODE_PREFIX.match(prefix):
            raise forms.ValidationError("Use up to 20 letters, digits or dashes.")
        return prefix

    def clean(self):
        data = super().clean()
        kind, value = data.get("kind"), data.get("value")
        if kind == "fixed_discount" and (value is None or value <= 0):
            self.add_error("value", f"Say how much it takes off, in {self.tenant.currency}.")
        elif kind == "percent_discount" and (value is None or not 0 < value <= 100):
            self.add_error("value", "A percentage between 1 and 100.")
        if kind == "free_product" and not (data.get("product_external_id") or "").strip():
            self.add_error("product_external_id", "Say which product is free: its id in your store.")
        return data

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        kind = data["kind"]
        data["value"] = data.get("value") if kind in ("fixed_discount", "percent_discount") else Decimal("0")
        data["currency"] = self.tenant.currency if kind == "fixed_discount" else ""
        data["product_external_id"] = data["product_external_id"].strip() if kind == "free_product" else ""
        return data


def _loyalty_page(request: HttpRequest, tenant: Tenant, *, program_form=None, tier_form=None, reward_form=None,
                  status: int = 200) -> HttpResponse:
    program = LoyaltyProgram.objects.for_tenant(tenant).first()
    tiers = list(Tier.objects.for_tenant(tenant).filter(program=program).order_by("threshold")) if program else []
    rewards = (list(LoyaltyReward.objects.for_tenant(tenant).filter(program=program).order_by("-active", "cost", "pk"))
               if program else [])
    return render(request, "workspace/settings/loyalty.html", {
        "section": "loyalty", "read_only_note": READ_ONLY_NOTE, "program": program,
        "form": program_form or LoyaltyProgramForm(instance=program or LoyaltyProgram(tenant=tenant)),
        "tiers": tiers, "rewards": rewards, "tier_form": tier_form or TierForm(prefix="tier"),
        "reward_form": reward_form or RewardForm(prefix="reward", tenant=tenant),
    }, status=status)


@workspace_view(write_role=MARKETER)
def loyalty(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method != "POST":
        return _loyalty_page(request, tenant)
    program = LoyaltyProgram.objects.for_tenant(tenant).first()
    # Validated on a copy: only the service writes.
    form = LoyaltyProgramForm(request.POST, instance=program or LoyaltyProgram(tenant=tenant))
    if not form.is_valid():
        return _loyalty_page(request, tenant, program_form=form, status=400)
    _, changed = loyalty_program_save(tenant=tenant, values=form.values(), by=changed_by(request))
    messages.success(request, "Loyalty programme saved." if changed or program is None else "Nothing changed.")
    return redirect("workspace:settings-loyalty", tenant=tenant.slug)


def _item_page(request: HttpRequest, tenant: Tenant, *, form, heading: str, action: str, status: int = 200,
               item=None, kind: str) -> HttpResponse:
    return render(request, "workspace/settings/loyalty_item.html", {
        "section": "loyalty", "read_only_note": READ_ONLY_NOTE, "form": form, "heading": heading,
        "action": action, "item": item, "kind": kind}, status=status)


@workspace_view(write_role=MARKETER)
def tier_add(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method != "POST":
        return redirect("workspace:settings-loyalty", tenant=tenant.slug)
    form = TierForm(request.POST, prefix="tier")
    if form.is_valid():
        try:
            tier = loyalty_tier_save(tenant=tenant, values=form.values(), by=changed_by(request))
        except ServiceError as exc:
            apply_service_error(form, exc)
        else:
            messages.success(request, f"Tier “{tier.name}” added: customers reach it at their next points or "
                                      "the hourly check.")
            return redirect("workspace:settings-loyalty", tenant=tenant.slug)
    return _loyalty_page(request, tenant, tier_form=form, status=400)


@object_action(write_role=MARKETER)
def tier_edit(request: HttpRequest, tenant: Tenant, tier_id: int) -> HttpResponse:
    tier = get_object_or_404(Tier.objects.for_tenant(tenant), pk=tier_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    page = {"heading": f"Tier “{tier.name}”", "action": "workspace:settings-loyalty-tier", "item": tier,
            "kind": "tier"}
    if request.method != "POST":
        return _item_page(request, tenant, form=TierForm(instance=tier), **page)
    form = TierForm(request.POST, instance=Tier.objects.for_tenant(tenant).get(pk=tier.pk))
    if form.is_valid():
        try:
            loyalty_tier_save(tenant=tenant, tier=tier, values=form.values(), by=changed_by(request))
        except ServiceError as exc:
            apply_service_error(form, exc)
        else:
            messages.success(request, f"Tier “{form.cleaned_data['name']}” saved.")
            return redirect("workspace:settings-loyalty", tenant=tenant.slug)
    return _item_page(request, tenant, form=form, status=400, **page)


@object_action(write_role=MARKETER)
def tier_remove(request: HttpRequest, tenant: Tenant, tier_id: int) -> HttpResponse:
    tier = get_object_or_404(Tier.objects.for_tenant(tenant), pk=tier_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    if request.method == "POST":
        members = loyalty_tier_remove(tenant=tenant, tier=tier, by=changed_by(request))
        messages.success(request, f"Tier “{tier.name}” removed"
                         + (f": its {members} customer{'s' if members != 1 else ''} re-qualify for the other tiers "
                            "at the next check." if members else "."))
    return redirect("workspace:settings-loyalty", tenant=tenant.slug)


@workspace_view(write_role=MARKETER)
def reward_add(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    if request.method != "POST":
        return redirect("workspace:settings-loyalty", tenant=tenant.slug)
    form = RewardForm(request.POST, prefix="reward", tenant=tenant)
    if form.is_valid():
        try:
            reward = loyalty_reward_save(tenant=tenant, values=form.values(), by=changed_by(request))
        except ServiceError as exc:
            apply_service_error(form, exc)
        else:
            messages.success(request, f"Reward “{reward.name}” added to the catalog.")
            return redirect("workspace:settings-loyalty", tenant=tenant.slug)
    return _loyalty_page(request, tenant, reward_form=form, status=400)


@object_action(write_role=MARKETER)
def reward_edit(request: HttpRequest, tenant: Tenant, reward_id: int) -> HttpResponse:
    reward = get_object_or_404(LoyaltyReward.objects.for_tenant(tenant), pk=reward_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    page = {"heading": f"Reward “{reward.name}”", "action": "workspace:settings-loyalty-reward", "item": reward,
            "kind": "reward"}
    if request.method != "POST":
        return _item_page(request, tenant, form=RewardForm(instance=reward, tenant=tenant), **page)
    form = RewardForm(request.POST, instance=LoyaltyReward.objects.for_tenant(tenant).get(pk=reward.pk), tenant=tenant)
    if form.is_valid():
        try:
            loyalty_reward_save(tenant=tenant, reward=reward, values=form.values(), by=changed_by(request))
        except ServiceError as exc:
            apply_service_error(form, exc)
        else:
            messages.success(request, f"Reward “{form.cleaned_data['name']}” saved.")
            return redirect("workspace:settings-loyalty", tenant=tenant.slug)
    return _item_page(request, tenant, form=form, status=400, **page)


@object_action(write_role=MARKETER)
def reward_active(request: HttpRequest, tenant: Tenant, reward_id: int) -> HttpResponse:
    reward = get_object_or_404(LoyaltyReward.objects.for_tenant(tenant), pk=reward_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    if request.method == "POST":
        if request.POST.get("active") not in ("0", "1"):
            messages.error(request, "Say whether the reward goes off the catalog (active=0) or back on (active=1).")
            return _loyalty_page(request, tenant, status=400)
        active = request.POST.get("active") == "1"
        if loyalty_reward_set_active(tenant=tenant, reward=reward, active=active, by=changed_by(request)):
            messages.success(request, f"Reward “{reward.name}” is back in the catalog." if active else
                             f"Reward “{reward.name}” is off the catalog: customers can no longer redeem it. "
                             "Codes already issued stay valid.")
        else:
            messages.info(request, f"Reward “{reward.name}” was already {'on' if active else 'off'} the catalog.")
    return redirect("workspace:settings-loyalty", tenant=tenant.slug)


urlpatterns = [
    path("settings/loyalty/", loyalty, name="settings-loyalty"),
    path("settings/loyalty/tiers/", tier_add, name="settings-loyalty-tier-add"),
    path("settings/loyalty/tiers/<int:tier_id>/", tier_edit, name="settings-loyalty-tier"),
    path("settings/loyalty/tiers/<int:tier_id>/remove/", tier_remove, name="settings-loyalty-tier-remove"),
    path("settings/loyalty/rewards/", reward_add, name="settings-loyalty-reward-add"),
    path("settings/loyalty/rewards/<int:reward_id>/", reward_edit, name="settings-loyalty-reward"),
    path("settings/loyalty/rewards/<int:reward_id>/active/", reward_active, name="settings-loyalty-reward-active"),
    path("settings/referrals/", referral_program, name="settings-referrals"),
    path("settings/surveys/", surveys, name="settings-surveys"),
    path("settings/surveys/<int:survey_id>/", survey_edit, name="settings-survey"),
]
