"""JSON from outside (the API's bodies, storefront webhooks): one bounded loader for every route.

`json.loads` alone lets a body break the request that carries it: 100,000 nested `[` raise
RecursionError, a 5,000-digit integer raises ValueError (Python's int max str digits), `NaN`
becomes a float PostgreSQL's jsonb refuses, and a lone surrogate (`"\\ud800"`) becomes a str
that cannot be encoded for the database. Here each is a `JSONBodyError` with a message a person
can act on, raised before anything reads the payload. Numbers with a fraction are Decimal,
never float, so money never passes through binary floating point.
"""

import json
import re
from decimal import Decimal
from typing import Any

# Deep enough for any storefront payload (a Shopify order is ~7 levels) and any sane custom
# event's data; shallow enough that no recursive reader of stored JSON runs out of stack.
MAX_DEPTH = 32
# Characters in one JSON number. 64-bit ids are 20; money is a decimal string or a short number.
MAX_NUMBER_LENGTH = 40
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB]")


class JSONBodyError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _number_too_long(text: str) -> JSONBodyError:
    return JSONBodyError(
        "request.number_too_long",
        f"The body has a number of {len(text)} characters; numbers may have at most {MAX_NUMBER_LENGTH} "
        "(send long identifiers as strings).",
    )


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_LENGTH:
        raise _number_too_long(text)
    return int(text)


def _decimal(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_LENGTH:
        raise _number_too_long(text)
    return Decimal(text)


def _constant(name: str) -> Any:
    raise JSONBodyError("request.malformed_json", f"The body is not valid JSON: {name} is not a JSON number.")


def _too_deep() -> JSONBodyError:
    return JSONBodyError("request.too_deep", f"The body's JSON is nested more than {MAX_DEPTH} levels deep.")


def _check(value: Any, check_strings: bool) -> None:
    """Depth (iteratively: the check must not be what overflows the stack), and lone surrogates.

    A bulk body (1,000 orders) has ~60,000 values: the walk that names where a problem is built a
    path for each (a quarter of that request's parsing), so a walk without paths looks first and
    the naming walk runs only for a body it refuses."""
    if _problem_in(value, check_strings):
        _check_naming(value, check_strings)


def _bad_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _problem_in(value: Any, check_strings: bool) -> bool:
    """Whether `_check_naming` would refuse this value: the same walk, with no paths, leaves not stacked."""
    if not isinstance(value, dict | list):
        return check_strings and isinstance(value, str) and _bad_text(value)
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth >= MAX_DEPTH:
            return True
        if isinstance(item, dict):
            if check_strings and any(isinstance(key, str) and _bad_text(key) for key in item):
                return True
            children = item.values()
        else:
            children = item
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif check_strings and isinstance(child, str) and _bad_text(child):
                return True
    return False


def _check_naming(value: Any, check_strings: bool) -> None:
    """The check that raises, naming where the problem is."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise _too_deep()
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                # Escaped: the path goes into the answer, which must itself encode.
                name = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
                where = f"{path}.{name}" if path else name
                if check_strings and isinstance(key, str):
                    _check_text(key, where)
                stack.append((child, depth + 1, where))
        elif check_strings and isinstance(item, str):
            _check_text(item, path)


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JSONBodyError(
            "request.bad_unicode",
            f"{where or 'The body'} has a lone UTF-16 surrogate (such as \\ud800), which is not a character; "
            "send valid Unicode.",
        ) from None


def loads(raw: bytes | str) -> Any:
    """Parse a JSON body within the bounds above, or raise JSONBodyError."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode(json.detect_encoding(raw))
        except (UnicodeDecodeError, LookupError):
            raise JSONBodyError("request.malformed_json", "The body is not UTF-8 encoded JSON.") from None
    try:
        value = json.loads(raw, parse_int=_int, parse_float=_decimal, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise JSONBodyError(
            "request.malformed_json", f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        if isinstance(exc, JSONBodyError):
            raise
        raise JSONBodyError("request.malformed_json", f"The body is not valid JSON: {exc}.") from None
    check_strings = _SURROGATE_ESCAPE.search(raw) is not None
    # Fewer brackets than the limit cannot nest deeper than it: most bodies skip the walk.
    if check_strings or raw.count("[") + raw.count("{") > MAX_DEPTH:
        _check(value, check_strings)
    return value
