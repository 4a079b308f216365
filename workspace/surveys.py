"""Survey settings: each standard survey's wording (and its languages), follow-ups, throttle and alert
recipients."""

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from feedback.configure import survey_settings_save, survey_standard_ensure
from feedback.i18n import STRINGS
from feedback.models import Survey
from lifecycle.models import Tenant
from workspace.access import workspace_view
from workspace.customers import object_action, refuse_write

from .program_forms import MARKETER, READ_ONLY_NOTE, PageForm, PageMeta, changed_by, http_url, within

MAX_THROTTLE_DAYS = 365


class SurveyForm(PageForm):
    name_required = "Give the survey a name you will recognise in the journey builder."

    class Meta(PageMeta):
        model = Survey
        # Not `active`: no step consults it, so a box for it would promise what does not happen.
        fields = ["name", "question", "follow_up_question", "thank_you_text", "throttle_days", "alert_email",
                  "alert_webhook_url"]
        labels = {"question": "Question", "follow_up_question": "Follow-up question", "thank_you_text": "Thank-you text",
                  "throttle_days": "Ask one customer at most once per (days)", "alert_email": "Send negative answers to",
                  "alert_webhook_url": "And POST them to", "active": "Active"}
        help_texts = {"question": "Blank: the standard question for this kind of survey.",
                      "follow_up_question": "Asked under the score, with a comment box. Blank: the standard one.",
                      "thank_you_text": "Shown after the answer. Blank: the standard thanks.",
                      "throttle_days": f"Across all surveys, so nobody is asked too often; 0: no limit. At most "
                                       f"{MAX_THROTTLE_DAYS}. Review requests are never throttled.",
                      "alert_email": "An address that gets each negative answer (blank: the store's reply-to).",
                      "alert_webhook_url": "Each negative answer as JSON, for a helpdesk or a chat (optional)."}
        widgets = {"thank_you_text": forms.Textarea(attrs={"rows": 2})}

    TRANSLATED = (("question", "Question", 300), ("follow_up_question", "Follow-up question", 300),
                  ("thank_you_text", "Thank-you text", 500))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        own = self.instance.translations or {}
        for lang in translated_languages():
            for key, label, limit in self.TRANSLATED:
                self.fields[f"{lang}_{key}"] = forms.CharField(
                    label=f"{label} ({LANGUAGE_NAMES.get(lang, lang)})", required=False, max_length=limit,
                    initial=(own.get(lang) or {}).get(key, ""),
                    widget=forms.Textarea(attrs={"rows": 2}) if key == "thank_you_text" else None)

    def translations_open(self) -> bool:
        return any(f.errors or f.value() for f in self.translation_fields())

    def translation_fields(self) -> list:
        return [self[f"{lang}_{key}"] for lang in translated_languages() for key, _, _ in self.TRANSLATED]

    def clean_name(self):
        name = (self.cleaned_data.get("name") or "").strip()
        if not name:
            raise forms.ValidationError("Give the survey a name you will recognise in the journey builder.")
        return name

    def values(self) -> dict[str, Any]:
        data = {name: self.cleaned_data[name] for name in self.Meta.fields}
        # Languages the page does not show (set by an operator) are kept as they are.
        translations = {lang: words for lang, words in (self.instance.translations or {}).items()
                        if lang not in translated_languages()}
        for lang in translated_languages():
            words = {key: self.cleaned_data[f"{lang}_{key}"].strip() for key, _, _ in self.TRANSLATED}
            if any(words.values()):
                translations[lang] = {key: text for key, text in words.items() if text}
        data["translations"] = translations
        return data

    def clean_throttle_days(self):
        return within(self.cleaned_data.get("throttle_days"), 0, MAX_THROTTLE_DAYS,
                       f"Choose between 0 (no limit) and {MAX_THROTTLE_DAYS} days.")

    def clean_alert_webhook_url(self):
        url = (self.cleaned_data.get("alert_webhook_url") or "").strip()
        if url:
            http_url(url)
        return url


@workspace_view(write_role=MARKETER)
def surveys(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """The store's surveys; a POST with a standard kind saves that survey so its wording can be changed."""
    saved = list(Survey.objects.for_tenant(tenant).order_by("name", "pk"))
    if request.method == "POST":
        kind = request.POST.get("kind", "")
        if kind not in Survey.Kind.values:
            return render(request, "workspace/settings/surveys.html", {
                "section": "surveys", "read_only_note": READ_ONLY_NOTE, "surveys": saved,
                "standard": _unsaved_kinds(saved), "error": "Choose one of the standard surveys to set up.",
            }, status=400)
        survey = survey_standard_ensure(tenant=tenant, kind=kind, by=changed_by(request))
        return redirect("workspace:settings-survey", tenant=tenant.slug, survey_id=survey.pk)
    return render(request, "workspace/settings/surveys.html", {
        "section": "surveys", "read_only_note": READ_ONLY_NOTE, "surveys": saved, "standard": _unsaved_kinds(saved)})


LANGUAGE_NAMES = {"de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "nl": "Dutch"}


def translated_languages() -> list[str]:
    """The customer languages the survey pages speak besides English: the marketer's wording in each."""
    return [lang for lang in STRINGS if lang != "en"]


def _unsaved_kinds(saved: list[Survey]) -> list[tuple[str, str]]:
    keys = {s.key for s in saved}
    return [(k.value, k.label) for k in Survey.Kind if k.value not in keys]


@object_action(write_role=MARKETER)
def survey_edit(request: HttpRequest, tenant: Tenant, survey_id: int) -> HttpResponse:
    survey = get_object_or_404(Survey.objects.for_tenant(tenant), pk=survey_id)
    if (refused := refuse_write(request)) is not None:
        return refused
    form = SurveyForm(request.POST if request.method == "POST" else None,
                      instance=Survey.objects.for_tenant(tenant).get(pk=survey.pk))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            changed = survey_settings_save(tenant=tenant, survey=survey, values=form.values(), by=changed_by(request))
            messages.success(request, f"Survey “{survey.name}” saved." if changed else "Nothing changed.")
            return redirect("workspace:settings-surveys", tenant=tenant.slug)
        status = 400
    return render(request, "workspace/settings/survey.html", {
        "section": "surveys", "read_only_note": READ_ONLY_NOTE, "survey": survey, "form": form}, status=status)
