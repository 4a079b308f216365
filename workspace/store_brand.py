"""The store's brand (logo, colours, footer address) and its review moderation rules, each with a preview:
the brand on a sample email and on the shopper's preference page, the rules on the store's recent reviews.

Everyone in the store reads them; the brand is an owner's (as the sender settings), the review rules a
marketer's or an owner's (as the other programme settings). "Preview without saving" renders the posted,
unsaved values and writes nothing; a save is one service call with a `store.*` event holding the before and
after of each field (the audit log)."""

import re

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path

from feedback.configure import review_settings_save
from feedback.models import Review, ReviewSettings
from feedback.moderation import review_settings_for, review_verdict
from journeys.preview import sample_email
from lifecycle.models import Membership, Tenant
from lifecycle.pages import preference_page_sample
from workspace.access import workspace_view

from .program_forms import MARKETER, READ_ONLY_NOTE, PageMeta, changed_by
from .store_settings import tenant_settings_update

BRAND_FIELDS = ("brand_logo_url", "brand_color", "brand_background", "postal_address")
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
# White text on the brand colour (the buttons) needs this contrast: WCAG 2's minimum for large text and controls.
MIN_BUTTON_CONTRAST = 3.0
# The store's colour on its background (links, the store's name): the same minimum.
PREVIEW_REVIEWS = 10


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours, 1 to 21."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


class BrandForm(forms.ModelForm):
    class Meta(PageMeta):
        model = Tenant
        fields = list(BRAND_FIELDS)
        labels = {"brand_logo_url": "Logo address", "brand_color": "Brand colour", "brand_background": "Background colour",
                  "postal_address": "Footer address"}
        help_texts = {
            "brand_logo_url": "An https:// address of your logo (PNG, JPEG, GIF or SVG), shown at most 180×60 at the "
                              "top of every email and page. Blank: your store's name in the brand colour.",
            "brand_color": "Buttons, links and your store's name, as #rrggbb. White button text must stay readable.",
            "brand_background": "Around the email's white card and behind the shopper pages, as #rrggbb.",
            "postal_address": "Printed in every marketing email's footer (the law in the US and most of the EU).",
        }
        widgets = {"brand_color": forms.TextInput(attrs={"type": "color"}),
                   "brand_background": forms.TextInput(attrs={"type": "color"}),
                   "postal_address": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["postal_address"].required = True
        self.fields["postal_address"].error_messages["required"] = (
            "Marketing email must carry the store's postal address: fill it in.")

    def clean_brand_logo_url(self) -> str:
        url = (self.cleaned_data.get("brand_logo_url") or "").strip()
        if url and not url.startswith("https://"):
            raise forms.ValidationError("Use an https:// address: mail apps block images from plain http:// ones.")
        return url

    def _colour(self, name: str, label: str) -> str:
        value = (self.cleaned_data.get(name) or "").strip()
        if not HEX_COLOUR.match(value):
            raise forms.ValidationError(f"Write the {label} as # and six hex digits, such as #7a4b2a.")
        return value.lower()

    def clean_brand_color(self) -> str:
        colour = self._colour("brand_color", "brand colour")
        ratio = contrast(colour, "#ffffff")
        if ratio < MIN_BUTTON_CONTRAST:
            raise forms.ValidationError(f"White button text on {colour} is hard to read (contrast {ratio:.1f}:1, at "
                                        f"least {MIN_BUTTON_CONTRAST:.0f}:1 needed): choose a darker colour.")
        return colour

    def clean_brand_background(self) -> str:
        return self._colour("brand_background", "background colour")

    def clean(self):
        data = super().clean()
        colour, background = data.get("brand_color"), data.get("brand_background")
        if colour and background and contrast(colour, background) < MIN_BUTTON_CONTRAST:
            self.add_error("brand_background", f"The brand colour {colour} barely shows on {background} (contrast "
                                               f"{contrast(colour, background):.1f}:1): choose a lighter background.")
        return data


@workspace_view(write_role=Membership.Role.OWNER)
def brand(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Logo, colours and footer address, previewed on a sample email and the shopper's preference page."""
    form = BrandForm(request.POST if request.method == "POST" else None, instance=Tenant.objects.get(pk=tenant.pk))
    previewing = request.method == "POST" and "preview" in request.POST
    status = 200
    if request.method == "POST":
        valid = form.is_valid()
        if valid and not previewing:
            changed = tenant_settings_update(tenant=tenant, values=form.cleaned_data, by=changed_by(request),
                                             fields=BRAND_FIELDS)
            messages.success(request, "Brand saved." if changed else "Nothing changed.")
            return redirect("workspace:settings-brand", tenant=tenant.slug)
        status = 200 if valid else 400
    shown = form.instance if previewing and not form.errors else Tenant.objects.get(pk=tenant.pk)
    return render(request, "workspace/settings/brand.html", {
        "section": "brand", "form": form, "previewing": previewing, "preview": sample_email(tenant=shown),
        "page_preview": preference_page_sample(shown)}, status=status)


class ReviewSettingsForm(forms.ModelForm):
    auto_publish_min_rating = forms.TypedChoiceField(
        label="Publish without a person", required=False, coerce=int, empty_value=None,
        choices=[("", "Never: every review waits for a person"), *[(n, f"{n}★ and up") for n in (5, 4, 3, 2, 1)]],
        help_text="Reviews with at least this many stars go on the storefront as they arrive; the rest wait in "
                  "the review queue.")

    class Meta:
        model = ReviewSettings
        fields = ["moderation", "auto_publish_min_rating", "auto_publish_without_links"]
        labels = {"moderation": "Moderate reviews",
                  "auto_publish_without_links": "…only if it has no web address"}
        help_texts = {"moderation": "Off: every review is published as it arrives, with no queue.",
                      "auto_publish_without_links": "A review with a link waits for a person whatever its stars: "
                                                    "links are where review spam lives."}

    def clean(self):
        data = super().clean()
        if data.get("moderation") is False and data.get("auto_publish_min_rating") is not None:
            # Not an error: with moderation off the rule has nothing to decide. Keep it, but say so on the page.
            self.rule_unused = True
        return data


def review_rules_preview(tenant: Tenant, rules: ReviewSettings) -> list[dict]:
    """The store's latest reviews with what `rules` would do to each as it arrived (what they are now beside it)."""
    rows = Review.objects.for_tenant(tenant).select_related("product").order_by("-created_at", "-pk")[:PREVIEW_REVIEWS]
    return [{"review": r, "verdict": review_verdict(rules, rating=r.rating, title=r.title, body=r.body)} for r in rows]


@workspace_view(write_role=MARKETER)
def reviews(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Moderation on or off and the auto-publish rules; the preview runs them over the latest reviews."""
    current = review_settings_for(tenant)
    form = ReviewSettingsForm(request.POST if request.method == "POST" else None,
                              instance=ReviewSettings(tenant=tenant, moderation=current.moderation,
                                                      auto_publish_min_rating=current.auto_publish_min_rating,
                                                      auto_publish_without_links=current.auto_publish_without_links))
    previewing = request.method == "POST" and "preview" in request.POST
    status = 200
    if request.method == "POST":
        valid = form.is_valid()
        if valid and not previewing:
            changed = review_settings_save(tenant=tenant, values={k: form.cleaned_data[k] for k in form.Meta.fields},
                                           by=changed_by(request))
            messages.success(request, "Review rules saved: they apply to reviews that arrive from now on."
                             if changed else "Nothing changed.")
            return redirect("workspace:settings-reviews", tenant=tenant.slug)
        status = 200 if valid else 400
    rules = form.instance if previewing and not form.errors else current
    return render(request, "workspace/settings/reviews.html", {
        "section": "reviews", "form": form, "previewing": previewing, "read_only_note": READ_ONLY_NOTE,
        "rows": review_rules_preview(tenant, rules), "rule_unused": getattr(form, "rule_unused", False)},
        status=status)


urlpatterns = [
    path("settings/brand/", brand, name="settings-brand"),
    path("settings/reviews/", reviews, name="settings-reviews"),
]
