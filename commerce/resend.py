""""Send my links again": a buyer gives their e-mail address and the event, and the links
of their orders there are e-mailed to that address.

The page answers the same whether or not the address bought anything (no one learns who
bought what): the request only queues a task, which looks for orders and mails them if
there are any, so even the answer's timing says nothing. Requests are throttled per
address (counted whether or not it has orders, so the limit reveals nothing either):
a lost inbox is not a reason to send the same mail many times an hour.
"""

import hashlib
from functools import partial

from django import forms
from django.core.cache import cache
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from events.models import Event

# At most this many requests per address in RESEND_WINDOW seconds.
RESEND_LIMIT = 3
RESEND_WINDOW = 3600


class EventChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, event):
        return event.display_name


class ResendLinksForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address"), max_length=254,
                             help_text=_("The address you gave when you bought your photos."))
    event = EventChoiceField(label=_("Event"), to_field_name="slug", queryset=Event.objects.none(),
                             empty_label=_("Choose the event"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].widget.attrs.update(autocomplete="email")
        self.fields["event"].queryset = (Event.objects.filter(is_published=True, shop__isnull=False)
                                         .order_by("-date", "name"))


def _throttle_key(email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"commerce:resend:{digest}"


def allow(email: str) -> bool:
    """Count one request for ``email``; False once it asked more than RESEND_LIMIT times
    in the window (which starts with its first request)."""
    key = _throttle_key(email)
    cache.add(key, 0, timeout=RESEND_WINDOW)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this request opens a new window
        cache.add(key, 1, timeout=RESEND_WINDOW)
        count = 1
    return count <= RESEND_LIMIT


def request_links(email: str, event: Event) -> None:
    """Queue the search and the e-mail once the request's transaction is committed."""
    from commerce.tasks import send_links_again

    transaction.on_commit(partial(send_links_again.delay, email.strip(), event.pk), robust=True)
