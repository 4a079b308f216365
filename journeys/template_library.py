"""The only tags and filters a marketer's template may use.

Django's built-ins include {% load %}, {% include %}, {% extends %}, {% debug %} and
{% url %}: each reaches past the values we hand the template (other libraries, files,
the loaded modules, the URLconf). The sandbox engine gets this library instead.
"""

from django.template import Library, defaultfilters, defaulttags

register = Library()

ALLOWED_TAGS = ("if", "for", "with", "firstof", "cycle", "spaceless", "comment", "now", "filter",
                "autoescape", "ifchanged", "regroup", "templatetag", "verbatim", "widthratio", "resetcycle")

for name in ALLOWED_TAGS:
    register.tag(name, defaulttags.register.tags[name])
for name, function in defaultfilters.register.filters.items():
    register.filter(name, function)
