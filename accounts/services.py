"""Verb functions of the accounts app: API tokens and, in accounts.privacy, privacy requests."""

import logging

from django.db import transaction
from rest_framework.authtoken.models import Token

logger = logging.getLogger(__name__)


@transaction.atomic
def create_api_token(user) -> Token:
    """A fresh API token for ``user``; any previous token stops working at once."""
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    # Never the key: a log line must not be enough to use the API.
    logger.info("API token created", extra={"user_id": user.pk})
    return token


def revoke_api_token(user) -> bool:
    deleted, _ = Token.objects.filter(user=user).delete()
    if deleted:
        logger.info("API token revoked", extra={"user_id": user.pk})
    return bool(deleted)
