"""Connect the running localstripe's webhooks to this site (`make run` without Stripe keys).

localstripe has no webhook_endpoints API: the dj-stripe endpoint row is made here with a
secret of ours, and localstripe is told the URL and secret through its /_config/webhooks.
"""

import secrets
import urllib.parse
import urllib.request

from django.conf import settings
from django.core.management import BaseCommand, CommandError
from django.urls import reverse

LOCAL_ENDPOINT_ID = "we_localstripe_racephoto"


class Command(BaseCommand):
    help = "Register this site's webhook endpoint with the local fake Stripe (localstripe)."

    def add_arguments(self, parser):
        parser.add_argument("--site", required=True, help="this site's base URL, e.g. http://127.0.0.1:8000")

    def handle(self, *args, site, **options):
        from djstripe.models import WebhookEndpoint

        if not settings.STRIPE_LOCAL:
            raise CommandError("Only for localstripe (DEBUG on, no STRIPE_SECRET_KEY).")
        endpoint = WebhookEndpoint.objects.filter(id=LOCAL_ENDPOINT_ID).first()
        if endpoint is None:
            endpoint = WebhookEndpoint.objects.create(
                id=LOCAL_ENDPOINT_ID, livemode=False, url="", enabled_events=["*"],
                status="enabled", secret=f"whsec_{secrets.token_urlsafe(24)}")
        url = site.rstrip("/") + reverse("djstripe:djstripe_webhook_by_uuid",
                                         kwargs={"uuid": endpoint.djstripe_uuid})
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=url)
        data = urllib.parse.urlencode({"url": url, "secret": endpoint.secret}).encode()
        request = urllib.request.Request(
            f"{settings.STRIPE_API_BASE}/_config/webhooks/racephoto", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise CommandError(f"localstripe answered {response.status}")
        self.stdout.write(f"localstripe sends its webhooks to {url}")
