"""``{% site_name as SITE_NAME %}``: the platform's name (settings.SITE_NAME) where no context
processor ran (Django renders its 500 and CSRF pages without the request)."""

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def site_name() -> str:
    return settings.SITE_NAME
