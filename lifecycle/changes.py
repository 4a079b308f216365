"""The before and after of a settings change, for the audit log (`store.*` events' `changes`).

Values are made JSON-safe (a Decimal, a time, a duration as text). A secret never lands on the
timeline: a secret field shows as "(set)" before and "(changed)" after.
"""

import json
from collections.abc import Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

SECRET_BEFORE, SECRET_AFTER = "(set)", "(changed)"


def json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def field_changes(obj: Any, fields: Iterable[str], values: dict[str, Any], *,
                  secret: Iterable[str] = ()) -> dict[str, list[Any]]:
    """{field: [before, after]} for each of `fields` read from `obj` (before) and `values` (after)."""
    hidden = set(secret)
    return {name: [SECRET_BEFORE, SECRET_AFTER] if name in hidden
            else [json_safe(getattr(obj, name)), json_safe(values[name])] for name in fields}
