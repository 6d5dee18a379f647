"""dj-stripe's "callback is deprecated" warning is silenced for our callback, and only it."""

import pytest
from django.core import checks

pytestmark = pytest.mark.django_db  # dj-stripe's checks read the database

DEPRECATION = "DJSTRIPE_WEBHOOK_EVENT_CALLBACK is deprecated"


def one_argument(trigger):
    """A callback dj-stripe must refuse (it passes api_key too)."""


def messages():
    return [message for message in checks.run_checks(tags=["djstripe"])
            if message.level >= checks.WARNING]


def test_our_callback_passes_the_checks_silently():
    assert not [message for message in messages() if DEPRECATION in message.msg]


def test_another_callback_still_gets_the_warning_and_its_errors(settings):
    settings.DJSTRIPE_WEBHOOK_EVENT_CALLBACK = "commerce.tests.test_webhook_check.one_argument"
    found = messages()
    assert any(DEPRECATION in message.msg for message in found)
    assert "djstripe.E004" in [message.id for message in found]
