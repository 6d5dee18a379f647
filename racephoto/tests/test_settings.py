"""Settings come from the environment; bad values must fail at start-up with a clear message."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from racephoto.env import env_bool, env_int, env_list, parse_database_url, validate_redis_url

# runpy re-executes the settings module that pytest-django already imported; that is the point.
pytestmark = pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")

def test_it_loads_production_settings_with_safe_defaults(production_settings):
    settings = production_settings()
    assert settings["DEBUG"] is False
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["CSRF_COOKIE_SECURE"] is True
    assert settings["SECURE_SSL_REDIRECT"] is True
    assert settings["SECURE_HSTS_SECONDS"] > 0
    assert settings["DATABASES"]["default"]["HOST"] == "db.internal"
    assert settings["DATABASES"]["default"]["NAME"] == "racephoto"
    assert settings["CELERY_BROKER_URL"] == "redis://redis.internal:6379/0"
    assert settings["SEARCH_BACKEND"] == "hnswlib"
    assert settings["STORAGES"]["private"]["OPTIONS"]["base_url"] is None


@pytest.mark.parametrize(("overrides", "message"), [
    ({"SECRET_KEY": None}, "SECRET_KEY must be set"),
    ({"DATABASE_URL": None}, "DATABASE_URL and REDIS_URL must be set when DEBUG is off"),
    ({"REDIS_URL": None}, "DATABASE_URL and REDIS_URL must be set when DEBUG is off"),
    ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS must be set"),
    ({"DEBUG": "maybe"}, "DEBUG must be a boolean"),
    ({"DATABASE_URL": "sqlite:///db.sqlite3"}, "DATABASE_URL must be a postgres://"),
    ({"DATABASE_URL": "postgres://host:5432/"}, "DATABASE_URL must name a database"),
    ({"DATABASE_URL": "postgres://host:port/db"}, "DATABASE_URL has an invalid port"),
    ({"REDIS_URL": "http://redis:6379"}, "REDIS_URL must be a redis://"),
    ({"SEARCH_BACKEND": "faiss"}, "SEARCH_BACKEND must be one of hnswlib, pgvector"),
    ({"STORAGE_BACKEND": "s3"}, "STORAGE_BACKEND=s3 needs S3_BUCKET"),
    ({"STRIPE_SECRET_KEY": "pk_test_123"}, "STRIPE_SECRET_KEY must start with"),
    ({"EMAIL_PORT": "twenty-five"}, "EMAIL_PORT must be an integer"),
])
def test_it_rejects_bad_settings_with_a_clear_message(production_settings, overrides, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        production_settings(**overrides)


@pytest.mark.parametrize(("key", "live"), [("sk_live_123", True), ("rk_live_123", True),
                                           ("sk_test_123", False), ("rk_test_123", False)])
def test_a_stripe_key_loads_without_a_webhook_secret_and_sets_the_mode(production_settings, key, live):
    # Webhooks are verified with their endpoint's secret, made in the admin (commerce/checks.py).
    settings = production_settings(STRIPE_SECRET_KEY=key)
    assert settings["STRIPE_LIVE_MODE"] is live
    assert "STRIPE_WEBHOOK_SECRET" not in settings


def test_it_uses_s3_for_public_and_private_files_when_configured(production_settings):
    settings = production_settings(STORAGE_BACKEND="s3", S3_BUCKET="race-photos")
    assert settings["STORAGES"]["default"]["BACKEND"] == "storages.backends.s3.S3Storage"
    private = settings["STORAGES"]["private"]["OPTIONS"]
    assert private["default_acl"] == "private"
    assert private["querystring_auth"] is True
    assert settings["STORAGES"]["default"]["OPTIONS"]["location"] != private["location"]


def test_it_speaks_kombus_dialect_for_a_unix_socket_broker(production_settings):
    settings = production_settings(REDIS_URL="unix:///run/valkey.sock")
    assert settings["CELERY_BROKER_URL"] == "redis+socket:///run/valkey.sock"
    assert settings["CACHES"]["default"]["LOCATION"] == "unix:///run/valkey.sock"


def test_it_keeps_the_database_number_of_a_unix_socket_broker(production_settings):
    # kombu ignores redis-py's ?db=: the broker would quietly be database 0.
    settings = production_settings(REDIS_URL="unix:///run/valkey.sock?db=15")
    assert settings["CELERY_BROKER_URL"] == "redis+socket:///run/valkey.sock?virtual_host=15"
    assert settings["CACHES"]["default"]["LOCATION"] == "unix:///run/valkey.sock?db=15"


def test_it_gives_public_s3_objects_the_media_cache_header(production_settings):
    settings = production_settings(STORAGE_BACKEND="s3", S3_BUCKET="race-photos")
    public = settings["STORAGES"]["default"]["OPTIONS"]
    assert public["object_parameters"] == {"CacheControl": settings["MEDIA_CACHE_CONTROL"]}
    assert "object_parameters" not in settings["STORAGES"]["private"]["OPTIONS"]
    assert settings["SERVE_MEDIA"] is False


def test_it_serves_media_itself_only_in_development_on_the_file_system(production_settings):
    assert production_settings()["SERVE_MEDIA"] is False
    assert production_settings(DEBUG="1")["SERVE_MEDIA"] is True
    assert production_settings(SERVE_MEDIA="1")["SERVE_MEDIA"] is True
    assert production_settings(DEBUG="1", STORAGE_BACKEND="s3",
                               S3_BUCKET="race-photos")["SERVE_MEDIA"] is False
    with pytest.raises(ImproperlyConfigured, match="with STORAGE_BACKEND=s3 the bucket"):
        production_settings(SERVE_MEDIA="1", STORAGE_BACKEND="s3", S3_BUCKET="race-photos")


@pytest.mark.parametrize(("public", "private"), [
    ("/data/files", "/data/files/private"),
    ("/data/files", "/data/files"),
    ("/data/files/media", "/data/files"),
])
def test_it_refuses_a_published_folder_that_holds_the_originals(production_settings, public, private):
    with pytest.raises(ImproperlyConfigured, match="must not contain each other"):
        production_settings(MEDIA_ROOT=public, PRIVATE_MEDIA_ROOT=private)


def test_it_names_the_site_in_e_mails_from_the_environment(production_settings):
    settings = production_settings(SITE_NAME="Photos du Trail")
    assert settings["SITE_NAME"] == "Photos du Trail"
    assert settings["ACCOUNT_EMAIL_SUBJECT_PREFIX"] == "[Photos du Trail] "
    assert settings["DEFAULT_FROM_EMAIL"] == "Photos du Trail <noreply@localhost>"


def test_it_parses_booleans_integers_and_lists(monkeypatch):
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_INT", " 42 ")
    monkeypatch.setenv("X_LIST", "a.example, b.example,,")
    assert env_bool("X_BOOL") is True
    assert env_int("X_INT", 0) == 42
    assert env_list("X_LIST") == ["a.example", "b.example"]
    assert env_bool("X_MISSING", True) is True
    monkeypatch.setenv("X_INT", "-1")
    with pytest.raises(ImproperlyConfigured, match="X_INT must be at least 0"):
        env_int("X_INT", 5, minimum=0)


def test_it_reads_a_socket_database_url_with_options():
    parsed = parse_database_url("postgresql://u:p%40ss@/racephoto?host=/var/run/pg&sslmode=disable")
    assert parsed["HOST"] == "/var/run/pg"
    assert parsed["PASSWORD"] == "p@ss"
    assert parsed["OPTIONS"] == {"sslmode": "disable"}
    assert validate_redis_url("rediss://cache:6380/1") == "rediss://cache:6380/1"


def test_s3_options_come_from_the_environment(production_settings):
    settings = production_settings(STORAGE_BACKEND="s3", S3_BUCKET="race-photos",
                                   S3_SIGNED_URL_MAX_AGE="120", S3_CUSTOM_DOMAIN="cdn.example.org")
    public, private = (settings["STORAGES"][name]["OPTIONS"] for name in ("default", "private"))
    assert private["querystring_expire"] == 120
    assert public["custom_domain"] == "cdn.example.org"
    # v4 everywhere: botocore would presign us-east-1 URLs with the legacy v2.
    assert public["signature_version"] == private["signature_version"] == "s3v4"
    assert (public["default_acl"], private["default_acl"]) == ("public-read", "private")


def test_a_bucket_without_acls_gets_no_acl_header(production_settings):
    settings = production_settings(STORAGE_BACKEND="s3", S3_BUCKET="race-photos",
                                   S3_OBJECT_ACLS="0")
    assert settings["STORAGES"]["default"]["OPTIONS"]["default_acl"] is None
    assert settings["STORAGES"]["private"]["OPTIONS"]["default_acl"] is None
    assert settings["STORAGES"]["private"]["OPTIONS"]["querystring_auth"] is True
