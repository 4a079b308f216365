"""Referral programs, codes, the review queue and rewards in the operators' admin (superusers only;
a store reviews its own referrals in the workspace).

Review decisions go through `services.referral_decide` (conditional: a referral refunded or
decided meanwhile is left alone), never by editing `state` by hand.
"""

from django.contrib import admin, messages

from lifecycle.admin import ReadOnlyMixin
from lifecycle.tenancy import is_operator

from . import services
from .models import Click, Invite, Program, Referral, ReferralCode, Reward


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = ("tenant", "active", "store_url", "advocate_reward_kind", "advocate_reward_amount",
                    "release_delay_days", "currency")
    list_filter = ("active", "tenant")


@admin.register(ReferralCode)
class ReferralCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "customer", "vanity", "tenant", "created_at", "disabled_at")
    list_filter = ("vanity", "tenant")
    search_fields = ("code", "customer__email")
    raw_id_fields = ("customer",)


@admin.register(Click)
class ClickAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("code", "at", "by_advocate", "tenant")
    list_filter = ("by_advocate", "tenant")


@admin.register(Invite)
class InviteAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("customer", "delivery_id", "created_at", "tenant")


class RewardInline(ReadOnlyMixin, admin.TabularInline):
    model = Reward
    extra = 0
    fields = ("side", "customer", "kind", "amount", "currency", "code", "state", "attempts", "last_error", "issued_at")
    readonly_fields = fields


@admin.register(Referral)
class ReferralAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The review queue: filter by state = review; approve or reject with the actions."""

    list_display = ("code", "advocate", "friend", "order", "state", "reason", "carrier", "review_deadline",
                    "release_at", "tenant")
    list_filter = ("state", "carrier", "tenant")
    search_fields = ("code__code", "advocate__email", "friend__email", "order__external_id")
    list_select_related = ("code", "advocate", "friend", "order", "tenant")
    readonly_fields = ("code", "advocate", "friend", "order", "carrier", "state", "reason", "flags", "order_total",
                       "currency", "converted_at", "release_at", "review_deadline", "decided_by", "decided_at",
                       "rewarded_at", "rejected_at")
    inlines = (RewardInline,)
    actions = ("approve_selected", "reject_selected")

    def has_change_permission(self, request, obj=None) -> bool:
        # The approve/reject actions below (every field is read-only): operators only, like the whole site.
        return is_operator(request.user)

    def _decide(self, request, queryset, approve: bool) -> None:
        done = sum(services.referral_decide(referral_id=r.pk, tenant=r.tenant_id, approve=approve,
                                            by=request.user.get_username()) for r in queryset)
        skipped = queryset.count() - done
        messages.success(request, f"{'Approved' if approve else 'Rejected'} {done} referral(s)."
                         + (f" {skipped} were not waiting for review." if skipped else ""))

    @admin.action(description="Approve selected referrals (reward after the release delay)")
    def approve_selected(self, request, queryset) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Reject selected referrals")
    def reject_selected(self, request, queryset) -> None:
        self._decide(request, queryset, approve=False)


@admin.register(Reward)
class RewardAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("referral", "side", "customer", "kind", "amount", "currency", "state", "attempts", "last_error",
                    "issued_at", "tenant")
    list_filter = ("state", "kind", "side", "tenant")
