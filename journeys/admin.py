"""The operator's read-only view of journeys, and why a customer got (or did not get) each step.

The operators' admin: superusers only (lifecycle.admin_site), across every tenant (the admin's default manager
is `all_tenants`). Journeys are changed through their services and the marketer's
workspace, never by editing rows here: a hand-edited Delivery state would bypass the
send gate's guarantees. The marketer's tenant-scoped workspace is built on top of this.
"""

from django.contrib import admin
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from lifecycle.admin import ReadOnlyMixin
from lifecycle.models import Customer
from lifecycle.tenancy import is_operator

from .models import Delivery, EmailTemplate, Enrollment, Journey, Step
from .selectors import customer_journeys_explain, customer_time_zone


class ReadOnlyPlatformAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Visible to operators (the site lets no one else in); nobody adds, changes or deletes through it."""

    def has_module_permission(self, request) -> bool:
        return is_operator(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return is_operator(request.user)


def explain_link(customer_id: int, text: str = "explain") -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:journeys_customer_explain", args=[customer_id]), text)


class StepInline(ReadOnlyMixin, admin.TabularInline):
    model = Step
    extra = 0
    fields = ("position", "name", "kind", "wait_kind", "wait", "anchor", "wait_event", "wait_max", "template")
    readonly_fields = fields
    show_change_link = True


@admin.register(Journey)
class JourneyAdmin(ReadOnlyPlatformAdmin):
    list_display = ("name", "tenant", "status", "trigger", "message_class", "entry_policy", "priority",
                    "holdout_percent", "updated_at")
    list_filter = ("status", "trigger", "message_class", "tenant")
    search_fields = ("name", "library_key", "custom_event_type")
    list_select_related = ("tenant",)
    inlines = (StepInline,)


@admin.register(Step)
class StepAdmin(ReadOnlyPlatformAdmin):
    list_display = ("__str__", "tenant", "journey", "position", "kind", "wait_kind", "wait", "anchor", "template")
    list_filter = ("kind", "wait_kind", "tenant")
    search_fields = ("journey__name", "name")
    list_select_related = ("tenant", "journey", "template")


@admin.register(EmailTemplate)
class EmailTemplateAdmin(ReadOnlyPlatformAdmin):
    list_display = ("name", "tenant", "subject", "signature", "updated_at")
    list_filter = ("tenant",)
    search_fields = ("name", "subject")
    list_select_related = ("tenant",)


@admin.register(Enrollment)
class EnrollmentAdmin(ReadOnlyPlatformAdmin):
    list_display = ("journey", "customer", "tenant", "state", "reason", "order", "enrolled_at", "ended_at", "why")
    list_filter = ("state", "tenant")
    search_fields = ("customer__email", "customer__external_id", "journey__name", "reason")
    list_select_related = ("journey", "customer", "tenant", "order")
    date_hierarchy = "enrolled_at"

    @admin.display(description="why")
    def why(self, obj: Enrollment) -> str:
        return explain_link(obj.customer_id)

    def get_urls(self):
        own = [path("customer/<int:customer_id>/explain/", self.admin_site.admin_view(self.customer_explain_view),
                    name="journeys_customer_explain")]
        return own + super().get_urls()

    def customer_explain_view(self, request, customer_id: int) -> TemplateResponse:
        """Every journey for one customer, in words: the same selector the API answers with."""
        if not self.has_view_permission(request):
            raise Http404
        customer = Customer.all_tenants.select_related("tenant").filter(pk=customer_id).first()
        if customer is None:
            raise Http404
        journeys = customer_journeys_explain(tenant=customer.tenant, customer=customer)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Journeys of {customer}",
            "customer": customer,
            "customer_url": reverse("admin:lifecycle_customer_change", args=[customer.pk]),
            "time_zone": customer_time_zone(tenant=customer.tenant, customer=customer).key,
            "journeys": journeys,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/journeys/customer_explain.html", context)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyPlatformAdmin):
    list_display = ("journey", "step_position", "customer", "tenant", "state", "reason", "due_at", "sent_at",
                    "delivered_at", "opened_at", "bounced_at", "why")
    list_filter = ("state", "message_class", "tenant")
    search_fields = ("customer__email", "customer__external_id", "journey__name", "esp_message_id", "message_id")
    list_select_related = ("journey", "step", "customer", "tenant")
    date_hierarchy = "due_at"

    @admin.display(description="step", ordering="step__position")
    def step_position(self, obj: Delivery) -> int:
        return obj.step.position

    @admin.display(description="why")
    def why(self, obj: Delivery) -> str:
        return explain_link(obj.customer_id)
