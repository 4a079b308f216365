"""The operators' admin: every store, for the platform's operators only (lifecycle.admin_site).

A store's own users work in the tenant-scoped workspace (/app/); nothing here is theirs.
"""

from django.contrib import admin
from django.utils.html import format_html

from . import models


class ReadOnlyMixin:
    """History and machinery: an operator looks, nobody adds, changes or deletes through the admin.

    For a ModelAdmin (`class X(ReadOnlyMixin, admin.ModelAdmin)`) or an inline. Views stay with the
    site's operators-only rule (`has_view_permission` of a superuser)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "currency", "time_zone", "created_at")
    search_fields = ("name", "slug")


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "tenant", "role")
    list_filter = ("role",)


@admin.register(models.ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    list_filter = ("tenant",)


@admin.register(models.StoreConnection)
class StoreConnectionAdmin(admin.ModelAdmin):
    list_display = ("platform", "tenant", "shop_domain", "site_url", "public_id", "created_at")
    exclude = ("webhook_secret_encrypted", "previous_webhook_secret_encrypted")
    readonly_fields = ("public_id",)


class OrderLineInline(ReadOnlyMixin, admin.TabularInline):
    model = models.OrderLine
    extra = 0
    fields = ("sku", "title", "quantity", "unit_price")
    readonly_fields = fields


class RefundInline(ReadOnlyMixin, admin.TabularInline):
    model = models.Refund
    extra = 0
    fields = ("external_id", "amount", "currency", "reason", "refunded_at")
    readonly_fields = fields


@admin.register(models.Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("__str__", "tenant", "customer", "status", "total", "currency", "placed_at", "source")
    list_filter = ("status", "source", "tenant")
    search_fields = ("external_id", "number", "customer__email")
    list_select_related = ("customer", "tenant")
    inlines = (OrderLineInline, RefundInline)
    raw_id_fields = ("customer",)


@admin.register(models.Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("__str__", "tenant", "full_name", "order_count", "total_spent", "marketing_consent", "last_order_at")
    list_filter = ("tenant", "marketing_consent")
    search_fields = ("email", "external_id", "last_name")


@admin.register(models.Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("__str__", "tenant", "sku", "replenishment_days")
    search_fields = ("title", "sku", "external_id")


@admin.register(models.Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("type", "tenant", "customer", "order", "occurred_at", "backfill")
    list_filter = ("type", "backfill", "tenant")
    list_select_related = ("customer", "order", "tenant")
    raw_id_fields = ("customer", "order")


@admin.register(models.WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("topic", "tenant", "status", "received_at", "detail")
    list_filter = ("status", "topic")
    exclude = ("body",)
    readonly_fields = ("body_text",)

    @admin.display(description="body")
    def body_text(self, obj):
        return bytes(obj.body).decode("utf-8", "replace")


@admin.register(models.OutboxMessage)
class OutboxMessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The embedded profile's sent mail: a record of what went out, never written by hand."""

    list_display = ("subject", "to", "tenant", "created_at")
    readonly_fields = ("from_email", "to", "subject", "headers", "message_id", "text_body", "rendered")
    exclude = ("html_body",)

    @admin.display(description="HTML")
    def rendered(self, obj):
        return format_html('<iframe sandbox srcdoc="{}" style="width:100%;height:600px;border:1px solid #ccc"></iframe>',
                           obj.html_body)
