"""The operator's admin for loyalty. Ledger entries are read-only: they are history."""

from django.contrib import admin

from lifecycle.admin import ReadOnlyMixin

from . import models


class TierInline(admin.TabularInline):
    model = models.Tier
    extra = 0
    fields = ("name", "threshold", "multiplier", "perks")


class RewardInline(admin.TabularInline):
    model = models.Reward
    extra = 0
    fields = ("name", "kind", "cost", "value", "currency", "product_external_id", "code_source", "active")


@admin.register(models.Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = ("tenant", "enabled", "points_per_unit", "pending_days", "tier_basis", "expiry_months")
    list_filter = ("enabled",)
    inlines = (TierInline, RewardInline)

    def save_formset(self, request, form, formset, change):
        for obj in formset.save(commit=False):
            obj.tenant_id = form.instance.tenant_id
            obj.save()
        for obj in formset.deleted_objects:
            obj.delete()


@admin.register(models.LoyaltyAccount)
class LoyaltyAccountAdmin(admin.ModelAdmin):
    list_display = ("customer", "tenant", "balance", "pending", "debt", "tier", "last_activity_at")
    list_filter = ("tenant",)
    raw_id_fields = ("customer",)
    readonly_fields = ("balance", "pending", "debt", "lifetime_earned", "tier", "tier_changed_at", "last_activity_at",
                       "expiry_warned_for", "expiry_warned_at")


@admin.register(models.LedgerEntry)
class LedgerEntryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("created_at", "tenant", "customer", "kind", "amount", "points", "pending_points", "debt_points",
                    "source", "reason")
    list_filter = ("kind", "tenant")
    search_fields = ("source",)
    list_select_related = ("customer", "tenant")


@admin.register(models.Redemption)
class RedemptionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "tenant", "customer", "reward", "points", "code", "state")
    list_filter = ("state", "tenant")
    raw_id_fields = ("customer", "account", "entry")
