"""Checks a marketer's template before it is saved, so mistakes show up on import, not at send time.

Four checks, each with a message a person can act on:
- it compiles in the sandbox engine that sends it (journeys.rendering.sandbox());
- every {{ placeholder }} names something the email context has (a misspelt one would
  render as nothing, silently). A name the context does not have yet may appear inside an
  `{% if name %}` block — that is how a template prepares for a link a later feature adds:
  the block stays out of the email until then;
- it renders against a sample context (tags that compile but fail at render time);
- its work is bounded (journeys.render_limits): loops nest at most two deep and never run over
  the letters of a plain value, and padding filters stay under a small width.
"""

from typing import Any

from django.template import TemplateSyntaxError
from django.template.base import FilterExpression, Variable, VariableNode
from django.template.defaulttags import FirstOfNode, ForNode, IfNode, WithNode

from lifecycle.numbers import whole_number

from .render_limits import (
    CHECK_SECONDS,
    MAX_LOOP_DEPTH,
    MAX_WIDTH,
    PADDING_FILTERS,
    RenderBudget,
    bounded_context,
    width_problem,
)
from .rendering import sandbox

# The shape of journeys.rendering.email_context(), with sample values. A test keeps the two in step.
SAMPLE_CONTEXT: dict[str, Any] = {
    "first_name": "Ada",
    "customer": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "order_count": 1},
    "store": {"name": "Acme Coffee", "postal_address": "1 Roastery Lane, Berlin"},
    "unsubscribe_url": "https://example.com/u/sample",
    "points_balance": 120, "tier": "Silver", "loyalty_url": "https://example.com/l/sample",
    "discount_code": "THANKS-7QX2",  # "" unless an earlier discount-code step gave one (journeys/discounts.py)
    "order": {
        "number": "#1001", "total": "€59.90", "item_titles": "House beans 1 kg, Paper filters",
        "items": [{"title": "House beans 1 kg", "sku": "BEANS-1KG", "quantity": 2,
                   "image_url": "https://example.com/beans.jpg", "url": "https://example.com/beans"}],
    },
}

_ANY = object()  # a name whose shape is unknown (a {% with %} alias, a guarded future placeholder)

# Names a step kind adds to the context (feedback.rendering.survey_email_context for survey emails).
KIND_CONTEXT: dict[str, dict[str, Any]] = {
    "feedback_request": {"survey": _ANY, "survey_url": None, "review_links": _ANY},
    # referrals.rendering.referral_invite_context
    "check_in": {"signer": {"name": None, "email": None}},
    "community_invite": {"community_url": None},
    "referral_invite": {"referral_url": None, "referral_code": None, "referral_offer": None, "referral_page_url": None,
                        "share": {"copy": None, "email": None, "whatsapp": None, "x": None, "facebook": None}},
}


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0]) if value else _ANY]
    return None  # a plain value: nothing to look up inside it


def _names(keys) -> str:
    keys = list(keys)
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + " or " + keys[-1]


def _filter_argument(is_variable: bool, arg: Any) -> Any:
    """A filter argument's value when the template writes it (a quoted string or a number), else _ANY."""
    if not is_variable:
        return arg
    if isinstance(arg, Variable) and arg.lookups is None:
        return arg.literal
    return _ANY


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.depth = 0

    def _lookup(self, lookups: tuple[str, ...], scope: dict[str, Any], *, guarded: bool) -> Any:
        """The shape `lookups` lead to, recording a problem when they lead nowhere."""
        root = lookups[0]
        if root not in scope:
            if guarded:
                return _ANY
            self.problems.append(f"{{{{ {'.'.join(lookups)} }}}} is not a placeholder; use {_names(scope)}")
            return _ANY
        shape = scope[root]
        for depth, part in enumerate(lookups[1:], start=1):
            if shape is _ANY:
                return _ANY
            where = ".".join(lookups[:depth])
            if isinstance(shape, list) and whole_number(part) is not None:
                shape = shape[0]
            elif isinstance(shape, dict) and part in shape:
                shape = shape[part]
            else:
                if isinstance(shape, dict):
                    hint = f"{where} has {_names(shape)}"
                elif isinstance(shape, list):
                    hint = f"{where} is a list: loop over it with {{% for item in {where} %}}"
                else:
                    hint = f"{where} is a plain value; change it with a filter such as |upper"
                self.problems.append(f"{{{{ {'.'.join(lookups)} }}}} is not a placeholder; {hint}")
                return _ANY
        return shape

    def _expression(self, expression: Any, scope: dict[str, Any], *, guarded: bool = False) -> Any:
        if not isinstance(expression, FilterExpression):
            return _ANY
        shape = _ANY
        if isinstance(expression.var, Variable) and expression.var.lookups:
            shape = self._lookup(expression.var.lookups, scope, guarded=guarded)
        for function, args in expression.filters:
            name = getattr(function, "_filter_name", getattr(function, "__name__", ""))
            for is_variable, arg in args:
                if is_variable and isinstance(arg, Variable) and arg.lookups:
                    self._lookup(arg.lookups, scope, guarded=guarded)
                if name in PADDING_FILTERS:
                    value = _filter_argument(is_variable, arg)
                    problem = (f"pads with |{name}:{arg.var if isinstance(arg, Variable) else arg}: write a number "
                               f"up to {MAX_WIDTH} instead of a placeholder" if value is _ANY
                               else width_problem(name, value))
                    if problem:
                        self.problems.append(problem)
        return shape if not expression.filters else _ANY

    def _condition(self, condition: Any, scope: dict[str, Any], tested: set[str]) -> None:
        if condition is None:
            return
        if hasattr(condition, "value"):  # a TemplateLiteral
            value = condition.value
            if isinstance(value, FilterExpression) and isinstance(value.var, Variable) and value.var.lookups:
                tested.add(value.var.lookups[0])
            self._expression(value, scope, guarded=True)
            return
        self._condition(getattr(condition, "first", None), scope, tested)
        self._condition(getattr(condition, "second", None), scope, tested)

    def walk(self, nodelist, scope: dict[str, Any]) -> None:
        for node in nodelist:
            if isinstance(node, VariableNode):
                self._expression(node.filter_expression, scope)
            elif isinstance(node, IfNode):
                for condition, branch in node.conditions_nodelists:
                    tested: set[str] = set()
                    self._condition(condition, scope, tested)
                    extra = {name: _ANY for name in tested if name not in scope}
                    self.walk(branch, {**scope, **extra})
            elif isinstance(node, ForNode):
                sequence = self._expression(node.sequence, scope)
                source = node.sequence.token if isinstance(node.sequence, FilterExpression) else "it"
                if sequence is None:
                    self.problems.append(f"loops over the letters of {source} one by one: write "
                                         "{{ " + source + " }} to show it, or loop over a list such as order.items")
                if self.depth + 1 > MAX_LOOP_DEPTH:
                    self.problems.append(f"has {{% for %}} loops nested {self.depth + 1} deep; at most "
                                         f"{MAX_LOOP_DEPTH} (a loop inside a loop) are allowed, because every level "
                                         "multiplies the work and the size of each email")
                element = sequence[0] if isinstance(sequence, list) else _ANY
                loop_scope = {**scope, "forloop": _ANY}
                for name in node.loopvars:
                    loop_scope[name] = element if len(node.loopvars) == 1 else _ANY
                self.depth += 1
                try:
                    self.walk(node.nodelist_loop, loop_scope)
                finally:
                    self.depth -= 1
                self.walk(node.nodelist_empty, scope)
            elif isinstance(node, WithNode):
                for expression in node.extra_context.values():
                    self._expression(expression, scope)
                self.walk(node.nodelist, {**scope, **{name: _ANY for name in node.extra_context}})
            else:
                if isinstance(node, FirstOfNode):
                    for expression in node.vars:
                        self._expression(expression, scope, guarded=True)
                for attribute in getattr(node, "child_nodelists", ()):
                    self.walk(getattr(node, attribute, None) or [], scope)


# How the work-limit problems above begin or read: a template with one is refused at every save.
LIMIT_PHRASES = ("{% for %} loops nested", "loops over the letters of", "pads to more than", "pads with |",
                 "cannot be rendered: the email")


def is_limit_problem(message: str) -> bool:
    """Whether a problem (of template_problems, or the builder's words around it) is a work or size limit."""
    return any(phrase in message for phrase in LIMIT_PHRASES)


def syntax_problem(source: str) -> str | None:
    try:
        sandbox().from_string(source)
    except TemplateSyntaxError as exc:
        return "is not a valid template: " + str(exc).replace(" Did you forget to register or load this tag?", "")
    return None


def template_problems(source: str, *, kind: str = "email") -> list[str]:
    """What is wrong with a template for a step of `kind`, in words a marketer can act on; [] when nothing is."""
    problem = syntax_problem(source)
    if problem:
        return [problem]
    compiled = sandbox().from_string(source)
    checker = _Checker()
    checker.walk(compiled.nodelist, {**_shape(SAMPLE_CONTEXT), **KIND_CONTEXT.get(kind, {})})
    if checker.problems:
        return list(dict.fromkeys(checker.problems))
    try:
        budget = RenderBudget(seconds=CHECK_SECONDS)
        budget.check_total(compiled.render(bounded_context(SAMPLE_CONTEXT, autoescape=True, budget=budget)))
    except Exception as exc:  # noqa: BLE001 - anything that fails here would fail at send time
        return [f"cannot be rendered: {exc}"]
    return []
