import runpy

import pytest

# External services named explicitly, so loading the settings starts nothing.
PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "a-real-secret",
    "ALLOWED_HOSTS": "photos.example.org",
    "DATABASE_URL": "postgres://racephoto:pw@db.internal:5432/racephoto",
    "REDIS_URL": "redis://redis.internal:6379/0",
}


@pytest.fixture
def production_settings(monkeypatch):
    """``production_settings(**overrides)``: the settings module run again under a
    production environment (plus ``overrides``; None unsets one), as a dict."""

    def load(**overrides) -> dict:
        for name in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL",
                     "SEARCH_BACKEND", "STORAGE_BACKEND", "S3_BUCKET", "STRIPE_SECRET_KEY",
                     "EMAIL_PORT", "SERVE_MEDIA", "SITE_NAME",
                     "DEFAULT_FROM_EMAIL", "MEDIA_ROOT", "PRIVATE_MEDIA_ROOT", "S3_OBJECT_ACLS",
                     "S3_SIGNED_URL_MAX_AGE", "S3_CUSTOM_DOMAIN"):
            monkeypatch.delenv(name, raising=False)
        for name, value in {**PRODUCTION_ENV, **overrides}.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        return runpy.run_module("racephoto.settings")

    return load
