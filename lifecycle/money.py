"""Money is a Decimal with an ISO 4217 currency; never a float."""

import functools
from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision, list_currencies

# Columns hold up to 4 decimal places so 3-decimal currencies (KWD, BHD) fit with room.
MONEY_DECIMAL_PLACES = 4
MONEY_MAX_DIGITS = 19
# Any one amount we accept (an order's total, a line's price, a refund) is below this. The columns
# hold up to 10^15, but what is derived from one order must fit too: journey revenue rollups
# (numeric(16, 2)) and their sums of squares (numeric(30, 4)), a customer's spend over many orders.
# A trillion units is far above any real order, even in IDR, VND or IRR.
MAX_AMOUNT = Decimal("1e12")
MAX_AMOUNT_TEXT = "999999999999.9999"
AMOUNT_HINT = 'must be a decimal amount such as "19.90"'


# ISO 4217 codes (and CLDR's extra X-codes) that are not money: precious metals, bond-market
# units, the IMF's SDR, the testing code XTS and "no currency" XXX.
NOT_CURRENCIES = frozenset({
    "XAG", "XAU", "XPD", "XPT", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA", "XTS", "XXX",
    "XAD", "XEU", "XFO", "XFU", "XRE",
})


@functools.cache
def currencies() -> frozenset[str]:
    return frozenset(code for code in list_currencies()
                     if len(code) == 3 and code.isalpha() and code.isupper() and code not in NOT_CURRENCIES)


def is_currency(code: str) -> bool:
    return code in currencies()


def precision(currency: str) -> int:
    return get_currency_precision(currency)


def to_decimal(value: object) -> Decimal:
    """Parse a money amount from a string or number without passing through float."""
    if isinstance(value, bool):
        raise ValueError(AMOUNT_HINT)
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(AMOUNT_HINT) from exc
    if not amount.is_finite():
        raise ValueError(AMOUNT_HINT)
    return amount


def money_str(amount: Decimal, currency: str) -> str:
    """Render an amount with at least the currency's minor units: 64.9 EUR -> "64.90", 1200 JPY -> "1200"."""
    places = precision(currency) if is_currency(currency) else 2
    exponent = amount.normalize().as_tuple().exponent
    shown = max(places, -exponent if isinstance(exponent, int) else places)
    return str(amount.quantize(Decimal(1).scaleb(-shown)))
