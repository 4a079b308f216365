"""How much work a marketer's template may make: bounded at save time and again while it renders.

A template is text a marketer writes once and the worker renders for every customer, so a loop
inside a loop over an order's items, or `ljust:"20000000"`, turns one order into minutes of work
and a message of megabytes. Two guards:

- at save time (journeys.template_checks), a template whose loops nest deeper than MAX_LOOP_DEPTH,
  that loops over a plain value (the letters of `order.item_titles`), or that pads or formats to
  more than MAX_WIDTH characters is refused with a message that says what to change;
- while it renders, every `{% for %}` counts what its iterations produce and checks the clock, so
  a template that got past the first guard (or was saved before it) stops at MAX_OUTPUT characters
  or when its time is up, with `RenderLimitExceeded`. A send records that on the delivery as
  failed (never retried); the preview shows it as a problem.
"""

import time

from django.template import Context
from django.template.base import Node, NodeList
from django.template.defaultfilters import center, floatformat, join, ljust, rjust, stringformat
from django.template.defaulttags import ForNode, do_for

# One email's rendered template fields, in characters: far beyond any real email (Gmail clips at
# ~100 kB), far below what would strain a worker.
MAX_OUTPUT = 1_000_000
# Seconds one email's templates may take to render when sent, and in the builder's preview and checks.
SEND_SECONDS = 2.0
PREVIEW_SECONDS = 2.0
CHECK_SECONDS = 1.0
# {% for %} inside {% for %} is fine; a third level is refused at save time.
MAX_LOOP_DEPTH = 2
# ljust / rjust / center widths, stringformat widths and floatformat places.
MAX_WIDTH = 200
PADDING_FILTERS = ("ljust", "rjust", "center", "stringformat", "floatformat")


class RenderLimitExceeded(Exception):
    """A template that breaks a bound while rendering; the message says which, for the marketer."""


class RenderBudget:
    """What one email's rendering may still spend: characters produced by loops, and time."""

    def __init__(self, seconds: float = SEND_SECONDS, max_output: int = MAX_OUTPUT):
        self.seconds, self.max_output = seconds, max_output
        self.deadline = time.monotonic() + seconds
        self.charged = 0

    def charge(self, size: int) -> None:
        self.charged += size
        if self.charged > self.max_output:
            raise RenderLimitExceeded(
                f"the email grew past {self.max_output:,} characters while rendering (a loop repeats too much "
                "text): shorten what the loop repeats")
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(f"the email took more than {self.seconds:g} s to render (a loop does too "
                                      "much work): simplify the template's loops")

    def check_total(self, text: str) -> str:
        if len(text) > self.max_output:
            raise RenderLimitExceeded(f"the email is larger than {self.max_output:,} characters: shorten it")
        return text


def bounded_context(values, *, autoescape: bool, budget: RenderBudget) -> Context:
    context = Context(values, autoescape=autoescape)
    context.render_budget = budget
    return context


class _LoopBody(Node):
    """A {% for %}'s body: renders it, and charges what it added (not what a loop inside it charged
    already) to the budget of the context it renders in, checking the clock even when it adds nothing."""

    child_nodelists = ("nodelist",)

    def __init__(self, nodelist: NodeList):
        self.nodelist = nodelist

    def render(self, context) -> str:
        budget = getattr(context, "render_budget", None)
        if budget is None:
            return self.nodelist.render(context)
        before = budget.charged
        budget.charge(0)
        piece = self.nodelist.render(context)
        budget.charge(max(0, len(piece) - (budget.charged - before)))
        return piece


def bounded_for(parser, token) -> ForNode:
    """{% for %} whose body is metered (_LoopBody); otherwise Django's own."""
    node = do_for(parser, token)
    node.nodelist_loop = NodeList([_LoopBody(node.nodelist_loop)])
    return node


def _width(name: str, arg, limit: int = MAX_WIDTH):
    try:
        number = int(str(arg).rstrip("gu") or 0) if name == "floatformat" else int(arg)
    except (TypeError, ValueError):
        return
    if abs(number) > limit:
        raise RenderLimitExceeded(f"|{name}:{arg} asks for more than {limit} characters")


def width_problem(name: str, arg) -> str | None:
    """Why a padding or formatting filter's argument is too big (save-time words), or None."""
    if name == "stringformat":
        digits = [int(d) for d in _digits(str(arg))]
        too_big = any(d > MAX_WIDTH for d in digits)
    elif name == "floatformat":
        try:
            too_big = abs(int(str(arg).rstrip("gu") or 0)) > MAX_WIDTH
        except ValueError:
            too_big = False
    else:
        try:
            too_big = abs(int(arg)) > MAX_WIDTH
        except (TypeError, ValueError):
            too_big = False
    if too_big:
        return f"pads to more than {MAX_WIDTH} characters with |{name}:\"{arg}\": use a number up to {MAX_WIDTH}"
    return None


def _digits(text: str) -> list[str]:
    out, current = [], ""
    for char in text:
        if "0" <= char <= "9":
            current += char
        elif current:
            out.append(current)
            current = ""
    return out + ([current] if current else [])


def _bounded_ljust(value, arg):
    _width("ljust", arg)
    return ljust(value, arg)


def _bounded_rjust(value, arg):
    _width("rjust", arg)
    return rjust(value, arg)


def _bounded_center(value, arg):
    _width("center", arg)
    return center(value, arg)


def _bounded_stringformat(value, arg):
    problem = width_problem("stringformat", arg)
    if problem:
        raise RenderLimitExceeded(problem)
    return stringformat(value, arg)


def _bounded_floatformat(text, arg=-1):
    _width("floatformat", arg)
    return floatformat(text, arg)


def _bounded_join(value, arg, autoescape=True):
    """|join, refused before it builds a string past MAX_OUTPUT (a long separator between every letter)."""
    try:
        size = len(value) * len(str(arg))
    except TypeError:
        size = 0
    if size > MAX_OUTPUT:
        raise RenderLimitExceeded(f"|join would write more than {MAX_OUTPUT:,} characters: use a shorter separator")
    return join(value, arg, autoescape=autoescape)


BOUNDED_FILTERS = {"ljust": _bounded_ljust, "rjust": _bounded_rjust, "center": _bounded_center,
                   "stringformat": _bounded_stringformat, "floatformat": _bounded_floatformat, "join": _bounded_join}
