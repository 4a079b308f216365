"""Template context every workspace page shares: the store switcher and the nav."""

from django.http import HttpRequest

from workspace.access import memberships_of


def workspace(request: HttpRequest) -> dict:
    if not request.path.startswith("/app/") or not request.user.is_authenticated:
        return {}
    current = getattr(request, "tenant", None)
    return {
        "ws_tenant": current,
        "ws_role": getattr(request, "role", None),
        "ws_can_write": getattr(request, "can_write", False),
        "ws_stores": [{"tenant": t, "role": r, "current": current is not None and t.pk == current.pk}
                      for t, r in memberships_of(request.user)],
    }
