import pytest


@pytest.fixture(autouse=True)
def _own_cache(settings):
    # allauth counts sign-in attempts in the cache: each test starts from zero,
    # whatever earlier tests (or runs) left in the shared Redis.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "accounts-tests"}}
    from django.core.cache import cache

    cache.clear()
