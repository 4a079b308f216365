"""Survey set-up, answers, alerts and review moderation in the operator's admin.

Moderation goes through `services.review_moderate` (approve, reject with a reason, reply),
never by editing the status field by hand, so review.approved is emitted once and the
moderator is recorded.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from lifecycle.admin import ReadOnlyMixin
from lifecycle.errors import ServiceError

from . import services
from .models import AnswerAttempt, FeedbackAlert, Review, Survey, SurveyRequest, SurveyResponse


@admin.register(Survey)
class SurveyAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "kind", "tenant", "throttle_days", "alert_email", "active")
    list_filter = ("kind", "active", "tenant")
    search_fields = ("name", "key")


@admin.register(SurveyRequest)
class SurveyRequestAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("survey", "customer", "order", "product", "asked_because", "asked_at", "journey_id")
    list_filter = ("survey__kind", "tenant")
    search_fields = ("customer__email", "asked_because")
    list_select_related = ("survey", "customer", "order", "product")


class AttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = AnswerAttempt
    fk_name = "request"
    extra = 0
    fields = ("at", "mode", "score", "automated", "outcome", "user_agent")
    readonly_fields = fields


@admin.register(SurveyResponse)
class SurveyResponseAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("survey", "customer", "score", "category", "state", "answered_at", "edits")
    list_filter = ("survey__kind", "category", "state", "tenant")
    search_fields = ("customer__email", "comment")
    list_select_related = ("survey", "customer")


@admin.register(AnswerAttempt)
class AnswerAttemptAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("request", "at", "mode", "score", "automated", "outcome")
    list_filter = ("mode", "automated", "tenant")


@admin.register(FeedbackAlert)
class FeedbackAlertAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("response", "state", "email_to", "webhook_url", "attempts", "email_sent_at", "webhook_sent_at",
                    "last_error")
    list_filter = ("state", "tenant")


class ModerationForm(forms.ModelForm):
    ACTIONS = (("", "— no change —"), ("approve", "Approve"), ("reject", "Reject"))
    action = forms.ChoiceField(choices=ACTIONS, required=False)

    class Meta:
        model = Review
        fields = ("rejection_reason", "store_reply")

    def clean(self):
        data = super().clean()
        if data.get("action") == "reject" and not (data.get("rejection_reason") or "").strip():
            raise ValidationError({"rejection_reason": "Say why the review is rejected."})
        return data


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    form = ModerationForm
    list_display = ("product", "rating", "title", "status", "verified_purchase", "customer", "created_at", "tenant")
    list_filter = ("status", "rating", "verified_purchase", "tenant")
    search_fields = ("title", "body", "product__title", "customer__email")
    list_select_related = ("product", "customer", "tenant")
    readonly_fields = ("product", "customer", "order", "rating", "title", "body", "verified_purchase", "author_name",
                       "status", "moderated_at", "moderated_by", "replied_at", "created_at")
    fields = (*readonly_fields[:8], "status", "action", "rejection_reason", "store_reply", "moderated_at",
              "moderated_by", "replied_at")
    actions = ("approve_selected",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        action = form.cleaned_data.get("action") or "reply"
        try:
            services.review_moderate(review=obj, action=action, reason=form.cleaned_data.get("rejection_reason", ""),
                                     reply=form.cleaned_data.get("store_reply", ""), by=request.user.get_username())
        except ServiceError as exc:
            messages.error(request, exc.message)

    @admin.action(description="Approve selected reviews")
    def approve_selected(self, request, queryset) -> None:
        for review in queryset:
            services.review_moderate(review=review, action="approve", by=request.user.get_username())
        messages.success(request, f"Approved {queryset.count()} review(s).")
