"""Numbers as the reader's language writes them: ``{{ count|grouped }}`` gives "12 480" in
French and "12,480" in English. Not a site-wide USE_THOUSAND_SEPARATOR: ids in URLs and
data attributes must stay plain digits."""

from django import template
from django.utils import formats

register = template.Library()


@register.filter
def grouped(value):
    if value is None or value == "":
        return ""
    return formats.number_format(value, force_grouping=True)
