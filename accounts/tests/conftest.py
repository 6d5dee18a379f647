import pytest


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Many users per test: the production hasher would make most of the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _own_cache(settings):
    # allauth counts sign-in attempts in the cache: each test starts from zero,
    # whatever earlier tests (or runs) left in the shared Redis.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "accounts-tests"}}
    from django.core.cache import cache

    cache.clear()
