"""The only tags and filters a marketer's template may use.

Django's built-ins include {% load %}, {% include %}, {% extends %}, {% debug %} and
{% url %}: each reaches past the values we hand the template (other libraries, files,
the loaded modules, the URLconf). The sandbox engine gets this library instead.
"""

from django.template import Library, defaultfilters, defaulttags

from .render_limits import BOUNDED_FILTERS, bounded_for

register = Library()

ALLOWED_TAGS = ("if", "for", "with", "firstof", "cycle", "spaceless", "comment", "now", "filter",
                "autoescape", "ifchanged", "regroup", "templatetag", "verbatim", "widthratio", "resetcycle")

for name in ALLOWED_TAGS:
    register.tag(name, defaulttags.register.tags[name])
# Loops and padding count their work (journeys.render_limits): a template cannot grow without bound.
register.tag("for", bounded_for)
for name, function in defaultfilters.register.filters.items():
    bounded = BOUNDED_FILTERS.get(name)
    if bounded is None:
        register.filter(name, function)
    else:
        register.filter(name, bounded, is_safe=getattr(function, "is_safe", False),
                        needs_autoescape=getattr(function, "needs_autoescape", False))
