"""Project-wide test set-up.

Tests run against the real embedded PostgreSQL (pytest-django creates
``test_racephoto`` on it) and the embedded Valkey. The environment defaults
for tests are in ``racephoto/testing.py``, loaded before Django starts.
"""

import os

import pytest


@pytest.fixture(autouse=True)
def _site_language():
    """Each test starts in the site's language, whatever language an earlier test (a
    request to /en/, a command) left active in this thread."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Tests create many users: the production hasher would make most of the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def own_cache(settings):
    """A cache of this test's own: allauth counts sign-in attempts in the cache, and each
    test starts from zero, whatever earlier tests (or runs) left in the shared Valkey."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "racephoto-tests"}}
    from django.core.cache import cache

    cache.clear()


# --- The people of every permission test ----------------------------------------------


@pytest.fixture
def named_people(db):
    """``named_people(event)``: the named users of the permission tests, by what they are
    to ``event``, the same in every test.

    anonymous: not signed in. runner: signed in, no staff role. outsider: a photographer
    of another event (staff, nothing to do with this one). staff: an organiser of another
    event. photographer: assigned to the event. owner: organiser of the event. admin: a
    platform admin (the admin role, without the superuser flag).
    """
    from accounts.models import User
    from accounts.tests.factories import UserFactory

    def people_at(event) -> dict:
        other = event.__class__.objects.create(
            name=f"Autre {event.slug}", slug=f"autre-{event.slug}", date=event.date,
            is_published=True)
        people = {
            "anonymous": None,
            "runner": UserFactory(username="rita-runner"),
            "outsider": UserFactory(username="oscar-outsider", role=User.Role.PHOTOGRAPHER),
            "staff": UserFactory(username="sam-staff", role=User.Role.ORGANISER),
            "photographer": UserFactory(username="paula-photographer",
                                        role=User.Role.PHOTOGRAPHER),
            "owner": UserFactory(username="olivier-owner", role=User.Role.ORGANISER),
            "admin": UserFactory(username="ada-admin", role=User.Role.ADMIN),
        }
        other.photographers.add(people["outsider"])
        other.organisers.add(people["staff"])
        event.photographers.add(people["photographer"])
        event.organisers.add(people["owner"])
        return people

    return people_at


@pytest.fixture
def people(event, named_people):
    """The named people of the module's ``event`` fixture."""
    return named_people(event)


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path, monkeypatch):
    """Every test writes files under its own temp dir, never into var/."""
    media = tmp_path / "media"
    private = tmp_path / "private"
    settings.MEDIA_ROOT = media
    settings.PRIVATE_MEDIA_ROOT = private
    settings.INDEX_DIR = tmp_path / "indexes"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media), "base_url": "/media/"},
        },
        "private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(private), "base_url": None},
        },
    }
    # Private file fields resolve their (callable) storage once, when models load,
    # so the new STORAGES above would not reach it on their own.
    from django.core.files.storage import storages

    from events.models import Event
    from photos.models import Photo

    for model, field in ((Photo, "original"), (Photo, "web"), (Event, "logo"),
                         (Event, "watermark_logo")):
        monkeypatch.setattr(model._meta.get_field(field), "storage", storages["private"])


# --- Browser tests -----------------------------------------------------------------
# Playwright drives Debian's Chromium (never a browser Playwright downloads).
# Outside CI, a machine without Chromium skips these tests and says so loudly
# at the end of the run; in CI a missing Chromium is a failure.

from pathlib import Path  # noqa: E402

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
_skipped_browser_tests: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    if CHROMIUM.exists() or _in_ci():
        return
    reason = f"Chromium not found at {CHROMIUM} (install Debian's chromium package as root)"
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))
            _skipped_browser_tests.append(item.nodeid)


def pytest_terminal_summary(terminalreporter):
    if not _skipped_browser_tests:
        return
    terminalreporter.write_sep("!", "BROWSER TESTS SKIPPED", red=True, bold=True)
    terminalreporter.write_line(
        f"{len(_skipped_browser_tests)} browser test(s) did not run because Chromium is missing "
        f"at {CHROMIUM}. Install it with: apt-get install chromium", red=True)
    for nodeid in _skipped_browser_tests:
        terminalreporter.write_line(f"  skipped: {nodeid}", red=True)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"CI must run the browser tests but {CHROMIUM} is missing.")
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls
    # made by the test itself are still synchronous and safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone first
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def service_root():
    """A data dir for a test's own embedded servers, outside pytest's tmp tree.

    As root, PostgreSQL runs as an unprivileged user that must traverse the
    parent dirs; pytest resets /tmp/pytest-of-root to 0700 whenever a session
    starts, which would lock a running server out of its own files.
    """
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="racephoto-test-"))
    yield root / "var"
    shutil.rmtree(root, ignore_errors=True)
