"""What the journey commands share: finding the store, and saying what was wrong, field by field."""

from django.core.management.base import CommandError

from lifecycle.models import Tenant


def tenant_or_error(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"no tenant with slug {slug!r}")
    return tenant


def write_fields(stderr, fields: dict[str, list[str]]) -> None:
    for field, messages in fields.items():
        for message in messages:
            stderr.write(f"{field}: {message}")
