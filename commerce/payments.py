"""The payment provider: Stripe, or localstripe (a fake Stripe on loopback) in `make run`.

``provider()`` says which one the shop uses, or None when it is not configured (DEBUG
off and no keys): then the shop says so instead of failing.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

import stripe
from django.conf import settings

STRIPE_JS = "https://js.stripe.com/v3/"


@dataclass(frozen=True)
class Provider:
    secret_key: str
    publishable_key: str
    api_base: str            # "" for Stripe itself
    is_local: bool           # localstripe: test payments only, said on the checkout page

    @property
    def js_url(self) -> str:
        return f"{self.api_base}/js.stripe.com/v3/" if self.api_base else STRIPE_JS

    def client(self) -> stripe.StripeClient:
        base = {"api": self.api_base} if self.api_base else {}
        return stripe.StripeClient(self.secret_key, base_addresses=base, max_network_retries=2)

    def content_security_policy(self, policy: str) -> str:
        """``policy`` with the provider's script, API and frame origins allowed."""
        if self.api_base:
            parts = urlsplit(self.api_base)
            origins = {"script-src": [f"{parts.scheme}://{parts.netloc}"],
                       "connect-src": [f"{parts.scheme}://{parts.netloc}"]}
        else:
            origins = {"script-src": ["https://js.stripe.com"],
                       "connect-src": ["https://api.stripe.com"],
                       "frame-src": ["https://js.stripe.com", "https://hooks.stripe.com"]}
        directives = [d.strip() for d in policy.split(";") if d.strip()]
        names = [d.split()[0] for d in directives]
        for name, extra in origins.items():
            if name in names:
                index = names.index(name)
                directives[index] = " ".join([directives[index], *extra])
            else:
                directives.append(" ".join([name, *extra]))
        return "; ".join(directives)


def provider() -> Provider | None:
    if not settings.STRIPE_SECRET_KEY or not settings.STRIPE_PUBLISHABLE_KEY:
        return None
    return Provider(secret_key=settings.STRIPE_SECRET_KEY,
                    publishable_key=settings.STRIPE_PUBLISHABLE_KEY,
                    api_base=(settings.STRIPE_API_BASE or "").rstrip("/"),
                    is_local=bool(getattr(settings, "STRIPE_LOCAL", False)))


def point_sdk_at_provider() -> None:
    """dj-stripe calls the SDK's module-level API: send it where our client goes."""
    current = provider()
    if current and current.api_base:
        stripe.api_base = current.api_base
