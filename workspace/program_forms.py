"""What the store's programme pages share: forms on a model with messages a person understands, bounds
that say why, who changed what, and a service's refusal shown on the form."""

from decimal import Decimal
from typing import Any

from django import forms
from django.core.validators import URLValidator
from django.db import models
from django.http import HttpRequest

from lifecycle.errors import ServiceError
from lifecycle.models import Membership

MARKETER = Membership.Role.MARKETER


READ_ONLY_NOTE = "a marketer or an owner changes these."


http_url = URLValidator(schemes=["http", "https"], message="Enter a web address starting with https://.")


def changed_by(request: HttpRequest) -> str:
    return request.user.get_username()


def within(value, low, high, message: str):
    if value is None or not low <= value <= high:
        raise forms.ValidationError(message)
    return value


def apply_service_error(form: forms.Form, exc: ServiceError) -> None:
    field = next((name for name in exc.fields if name in form.fields), None)
    form.add_error(field, exc.message)


def formfield(db_field, **kwargs):
    """Web addresses typed without a scheme are read as https://."""
    if isinstance(db_field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return db_field.formfield(**kwargs)


class PageMeta:
    formfield_callback = formfield


class PageForm(forms.ModelForm):
    """Labels on every field; an error anywhere says nothing was saved (the template's banner)."""

    # The message for a blank name (the field strips it, so the required check sees it first).
    name_required = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.name_required and "name" in self.fields:
            self.fields["name"].error_messages["required"] = self.name_required
        for name, value in self.initial.items():  # 10, not the column's 10.0000
            if isinstance(value, Decimal) and isinstance(self.fields.get(name), forms.DecimalField):
                self.initial[name] = f"{value.normalize():f}"

    def values(self) -> dict[str, Any]:
        return dict(self.cleaned_data)
