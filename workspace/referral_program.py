"""The referral programme's page: both sides' rewards, advocate tiers, release after the refund window, and
the fraud rules that hold a referral for review."""

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from lifecycle.models import Tenant
from referrals.configure import referral_program_save
from referrals.models import Program as ReferralProgram
from referrals.models import RewardKind
from workspace.access import workspace_view

from .program_forms import MARKETER, READ_ONLY_NOTE, PageForm, PageMeta, changed_by, within

MAX_RELEASE_DAYS = 365


MAX_REVIEW_HOURS = 24 * 30


REFERRAL_TIER_ROWS = 3




class ReferralProgramForm(PageForm):
    class Meta(PageMeta):
        model = ReferralProgram
        fields = ["active", "store_url", "currency", "friend_offer_kind", "friend_offer_value", "friend_reward_kind",
                  "friend_reward_amount", "advocate_reward_kind", "advocate_reward_amount", "new_customers_only",
                  "min_order_total", "release_delay_days", "advocate_monthly_cap", "max_clicks_per_ip_per_day",
                  "max_conversions_per_advocate_per_day", "review_deadline_hours", "review_auto_decision",
                  "reward_webhook_url"]
        labels = {
            "active": "Programme on", "store_url": "Store address", "currency": "Currency",
            "friend_offer_kind": "Friend's offer", "friend_offer_value": "Offer value",
            "friend_reward_kind": "Friend's reward after the release", "friend_reward_amount": "Amount",
            "advocate_reward_kind": "Advocate's reward", "advocate_reward_amount": "Amount",
            "new_customers_only": "New customers only", "min_order_total": "Minimum order total",
            "release_delay_days": "Release rewards after (days)", "advocate_monthly_cap": "Rewarded friends per "
            "advocate per month", "max_clicks_per_ip_per_day": "Hold for review over this many clicks from one IP "
            "a day", "max_conversions_per_advocate_per_day": "Hold for review over this many referred orders per "
            "advocate a day", "review_deadline_hours": "Decide held referrals within (hours)",
            "review_auto_decision": "Undecided by then", "reward_webhook_url": "Reward webhook",
        }
        help_texts = {
            "store_url": "Where a shared link sends the friend, with ?ref=<code>.",
            "friend_offer_value": "Applied by your store at checkout on the friend's first order: a percentage "
                                  "(1–100) or an amount.",
            "friend_reward_amount": "0: the friend gets only the offer. Points are whole points.",
            "advocate_reward_amount": "For each rewarded friend (more from the friends set below). Points are whole "
                                      "points.",
            "new_customers_only": "A friend who paid for an order before is rejected.",
            "release_delay_days": f"Longer than your refund window: a referral whose order is refunded or cancelled "
                                  f"before the release pays nothing. 1 to {MAX_RELEASE_DAYS}.",
            "advocate_monthly_cap": "0: no cap.",
            "review_deadline_hours": f"1 to {MAX_REVIEW_HOURS}.",
            "reward_webhook_url": "Discount codes and store credit are POSTed here for your store to create. "
                                  "Needed unless both rewards are points.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["currency"].help_text = "ISO 4217, such as EUR. Orders in another currency are not rewarded."
        kinds = [(RewardKind.POINTS, "Loyalty points"), (RewardKind.DISCOUNT_CODE, "Discount code"),
                 (RewardKind.STORE_CREDIT, "Store credit")]
        self.fields["friend_reward_kind"].choices = kinds
        self.fields["advocate_reward_kind"].choices = kinds
        self.fields["friend_offer_kind"].choices = [("percent", "Percent off"), ("amount", "Amount off")]
        self.fields["review_auto_decision"].choices = [("reject", "Reject them"), ("approve", "Approve them")]
        tiers = sorted(self.instance.advocate_tiers or [], key=lambda t: int(t["from_friend"]))
        for n in range(1, REFERRAL_TIER_ROWS + 1):
            tier = tiers[n - 1] if n <= len(tiers) else {}
            self.fields[f"tier{n}_from"] = forms.IntegerField(
                label="From friend no.", required=False, min_value=2,
                max_value=1000, initial=tier.get("from_friend"),
                error_messages={"min_value": "From the 2nd friend or later (the 1st gets the base amount).",
                                "max_value": "At most the 1000th friend.", "invalid": "A whole number."})
            self.fields[f"tier{n}_amount"] = forms.DecimalField(
                label="the advocate gets", required=False, min_value=0, max_digits=19, decimal_places=4,
                initial=tier.get("amount"), error_messages={"min_value": "0 or more."})

    def tier_rows(self) -> list[tuple]:
        return [(self[f"tier{n}_from"], self[f"tier{n}_amount"]) for n in range(1, REFERRAL_TIER_ROWS + 1)]

    def clean_currency(self):
        return (self.cleaned_data.get("currency") or "").strip().upper()

    def clean_release_delay_days(self):
        return within(self.cleaned_data.get("release_delay_days"), 1, MAX_RELEASE_DAYS,
                       f"Choose between 1 and {MAX_RELEASE_DAYS} days, longer than your refund window.")

    def clean_review_deadline_hours(self):
        return within(self.cleaned_data.get("review_deadline_hours"), 1, MAX_REVIEW_HOURS,
                       f"Choose between 1 and {MAX_REVIEW_HOURS} hours.")

    def clean_max_clicks_per_ip_per_day(self):
        return within(self.cleaned_data.get("max_clicks_per_ip_per_day"), 1, 10_000, "Choose between 1 and 10,000.")

    def clean_max_conversions_per_advocate_per_day(self):
        return within(self.cleaned_data.get("max_conversions_per_advocate_per_day"), 1, 1000,
                       "Choose between 1 and 1,000.")

    def clean_advocate_monthly_cap(self):
        return within(self.cleaned_data.get("advocate_monthly_cap"), 0, 1000, "Choose between 0 (no cap) and 1,000.")

    def clean(self):
        data = super().clean()
        if data.get("friend_offer_kind") == "percent" and (data.get("friend_offer_value") or 0) > 100:
            self.add_error("friend_offer_value", "A percentage is at most 100.")
        for side in ("friend", "advocate"):
            kind, amount = data.get(f"{side}_reward_kind"), data.get(f"{side}_reward_amount")
            if kind == RewardKind.POINTS and amount is not None and amount != amount.to_integral_value():
                self.add_error(f"{side}_reward_amount", "Points are whole points.")
        needs_webhook = data.get("advocate_reward_kind") != RewardKind.POINTS or (
            data.get("friend_reward_kind") != RewardKind.POINTS and (data.get("friend_reward_amount") or 0) > 0)
        url = (data.get("reward_webhook_url") or "").strip()
        if needs_webhook and not url:
            self.add_error("reward_webhook_url", "Discount codes and store credit are created by your store: give "
                                                 "the address we POST them to, or reward with points.")
        tiers, previous = [], 1
        for n in range(1, REFERRAL_TIER_ROWS + 1):
            start, amount = data.get(f"tier{n}_from"), data.get(f"tier{n}_amount")
            if start is None and amount is None:
                continue
            if start is None or amount is None:
                self.add_error(f"tier{n}_from" if start is None else f"tier{n}_amount",
                               "Give both the friend number and the amount, or neither.")
                continue
            if start <= previous:
                self.add_error(f"tier{n}_from", "List the friend numbers in increasing order, each once.")
                continue
            if data.get("advocate_reward_kind") == RewardKind.POINTS and amount != amount.to_integral_value():
                self.add_error(f"tier{n}_amount", "Points are whole points.")
                continue
            previous = start
            tiers.append({"from_friend": start, "amount": f"{amount.normalize():f}"})
        data["advocate_tiers"] = tiers
        return data

    def values(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in [*self.Meta.fields, "advocate_tiers"]}


@workspace_view(write_role=MARKETER)
def referral_program(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    program = ReferralProgram.objects.for_tenant(tenant).first()
    blank = ReferralProgram(tenant=tenant, currency=tenant.currency)
    form = ReferralProgramForm(request.POST if request.method == "POST" else None,
                               instance=(ReferralProgram.objects.for_tenant(tenant).get(pk=program.pk)
                                         if program else blank))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            _, changed = referral_program_save(tenant=tenant, values=form.values(), by=changed_by(request))
            messages.success(request, "Referral programme saved." if changed or program is None else "Nothing changed.")
            return redirect("workspace:settings-referrals", tenant=tenant.slug)
        status = 400
    return render(request, "workspace/settings/referrals.html", {
        "section": "referrals", "read_only_note": READ_ONLY_NOTE, "program": program, "form": form,
    }, status=status)
