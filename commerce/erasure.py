"""An erased runner's orders: kept for accounting, without the runner.

``accounts.privacy.erase`` sends ``runner_erased`` for each (event, bib) it erases, inside
its transaction. The runner's orders at that event (bought signed in, or as a guest with
their account's address) keep their amounts, VAT, dates, items and payments; they lose
the e-mail address (replaced by one that reaches nobody), the link to the account, the
cart, and their token, so the order page and every download link sent for them stop
working at once. (Orders hold no name: the address was the one personal field.) The
runner's cart at the event goes too.
"""

import logging
import secrets

from django.db.models import Q
from django.utils import timezone

from commerce.models import Cart, Order

logger = logging.getLogger(__name__)

# RFC 2606 reserves .invalid: an address there can never be delivered to anyone.
ERASED_EMAIL = "erased-{pk}@erased.invalid"


def anonymise_orders(sender, user, event, **kwargs) -> int:
    """runner_erased receiver: anonymise ``user``'s orders at ``event``; returns how many."""
    if user is None or event is None:
        return 0
    mine = Q(user=user)
    if user.email:
        mine |= Q(email__iexact=user.email)
    orders = list(Order.objects.select_for_update().filter(mine, event=event, anonymised_at=None))
    now = timezone.now()
    for order in orders:
        order.email = ERASED_EMAIL.format(pk=order.pk)
        order.user = None
        order.cart = None
        order.token = secrets.token_urlsafe(24)
        order.anonymised_at = now
        order.save(update_fields=["email", "user", "cart", "token", "anonymised_at"])
    Cart.objects.filter(event=event, user=user).delete()
    # Counts and ids only: the log must not keep what was just erased.
    logger.info("orders anonymised", extra={"event_id": event.pk, "orders": len(orders)})
    return len(orders)
