"""Number formats for the dashboards: shares as percentages, differences as points, money with its currency."""

from decimal import Decimal

from django import template

register = template.Library()
DASH = "—"


@register.filter
def pct(value, places: int = 1) -> str:
    """0.4163 -> '41.6%'; None -> '—' (nothing to divide by)."""
    if value is None:
        return DASH
    return f"{100 * float(value):.{int(places)}f}%"


@register.filter
def points(value, places: int = 1) -> str:
    """A difference of two shares: 0.081 -> '+8.1 pts'."""
    if value is None:
        return DASH
    return f"{100 * float(value):+.{int(places)}f} pts"


@register.filter
def money(value, currency: str = "") -> str:
    if value is None:
        return DASH
    amount = Decimal(str(value)).quantize(Decimal("0.01"))
    return f"{amount:,.2f} {currency}".strip()


@register.filter
def signed_money(value, currency: str = "") -> str:
    if value is None:
        return DASH
    amount = Decimal(str(value)).quantize(Decimal("0.01"))
    return f"{amount:+,.2f} {currency}".strip()


@register.filter
def heat(value, top) -> str:
    """A cell's background for the cohort heat table: stronger blue for more value (0..1 of the top)."""
    if value is None or not top:
        return ""
    share = max(0.0, min(1.0, float(value) / float(top)))
    return f"background: rgba(59, 91, 219, {0.08 + 0.6 * share:.2f})"
