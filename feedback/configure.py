"""The store's own survey settings and review moderation (the workspace's pages).

Each write is one transaction with a `store.*` event on the store's timeline naming who did it:
the history of who changed a survey's wording or moderated a review. Moderation itself is
`services.review_moderate` (it emits review.approved once, for loyalty).
"""

from typing import Any

from django.db import transaction

from lifecycle import clock
from lifecycle.changes import field_changes
from lifecycle.models import Tenant
from lifecycle.timeline import event_append

from . import services
from .models import Review, ReviewSettings, Survey
from .selectors import survey_for_config

SURVEY_FIELDS = ("name", "question", "follow_up_question", "thank_you_text", "throttle_days", "alert_email",
                 "alert_webhook_url", "translations")


def survey_standard_ensure(*, tenant: Tenant, kind: str, by: str) -> Survey:
    """The store's standard survey of a kind (NPS, CSAT…), saved so its wording can be changed. Idempotent."""
    with transaction.atomic():
        existing = Survey.objects.for_tenant(tenant).filter(key=kind).first()
        if existing is not None:
            return existing
        survey = services.survey_ensure(survey=survey_for_config(tenant=tenant, config={"survey": kind}))
        event_append(tenant=tenant, type="store.survey_created", occurred_at=clock.now(),
                     data={"survey": survey.key, "survey_id": survey.pk, "by": by})
    return survey


def survey_settings_save(*, tenant: Tenant, survey: Survey, values: dict[str, Any], by: str) -> list[str]:
    """Change a survey's wording, follow-up, throttle and alert recipients. Returns the fields that changed."""
    with transaction.atomic():
        locked = Survey.objects.for_tenant(tenant).select_for_update().get(pk=survey.pk)
        changed = [name for name in SURVEY_FIELDS if name in values and getattr(locked, name) != values[name]]
        if not changed:
            return []
        changes = field_changes(locked, changed, values)
        for name in changed:
            setattr(locked, name, values[name])
        locked.save(update_fields=[*changed, "updated_at"])
        event_append(tenant=tenant, type="store.survey_changed", occurred_at=clock.now(),
                     data={"survey": locked.key, "survey_id": locked.pk, "fields": changed, "changes": changes,
                           "by": by})
    survey.refresh_from_db()
    return changed


def review_moderate_by_store(*, tenant: Tenant, review: Review, action: str, by: str, reason: str = "",
                             reply: str | None = None) -> Review:
    """A store member's approve | reject (with a reason) | reply, through `review_moderate`, with a
    `store.review_moderated` event saying who did what. The review must be the store's."""
    if review.tenant_id != tenant.pk:
        raise ValueError("review of another store")
    with transaction.atomic():
        before = Review.objects.for_tenant(tenant).values_list("status", "store_reply").get(pk=review.pk)
        moderated = services.review_moderate(review=review, action=action, reason=reason, reply=reply, by=by)
        after = (moderated.status, moderated.store_reply)
        if after != before:
            event_append(tenant=tenant, type="store.review_moderated", occurred_at=clock.now(),
                         data={"review_id": moderated.pk, "action": action, "status": moderated.status,
                               "replied": after[1] != before[1], "by": by})
    return moderated


REVIEW_SETTINGS_FIELDS = ("moderation", "auto_publish_min_rating", "auto_publish_without_links")


def review_settings_save(*, tenant: Tenant, values: dict[str, Any], by: str) -> list[str]:
    """Change the store's review moderation rules (they apply to reviews that arrive from now on).
    Returns the fields that changed; a `store.review_settings_changed` event has the before and after."""
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()  # the first save of two at once: one at a time
        locked = ReviewSettings.objects.for_tenant(tenant).select_for_update().first()
        current = locked or ReviewSettings(tenant=tenant)
        changed = [name for name in REVIEW_SETTINGS_FIELDS if getattr(current, name) != values[name]]
        if not changed:
            return []
        changes = field_changes(current, changed, values)
        for name in changed:
            setattr(current, name, values[name])
        current.save()
        event_append(tenant=tenant, type="store.review_settings_changed", occurred_at=clock.now(),
                     data={"fields": changed, "changes": changes, "by": by})
    return changed
