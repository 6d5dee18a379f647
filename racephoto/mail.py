"""E-mails from allauth name the platform (SITE_NAME), not the host a request came to.

Without django.contrib.sites (which would also move the sitemaps' URLs onto one
fixed domain), allauth greets with the request's host: "Hello from
127.0.0.1:8000!". The domain stays the request's: it is the one the reader
signed up on.
"""

from dataclasses import dataclass

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings


@dataclass(frozen=True)
class Site:
    name: str
    domain: str


def current_site(request) -> Site:
    return Site(name=settings.SITE_NAME, domain=request.get_host() if request is not None else "")


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        request = getattr(allauth_context, "request", None)
        super().send_mail(template_prefix, email, {"current_site": current_site(request), **context})
