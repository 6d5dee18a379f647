"""Loaded by pytest (``-p racephoto.testing`` in pytest.ini) before Django is set up.

Tests load the settings with DEBUG on so no production secret is needed;
Django's test runner still runs the views with DEBUG off.
"""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
