"""French and English catalogues stay complete: no string reaches a French user untranslated."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = {lang: ROOT / "locale" / lang / "LC_MESSAGES" / "django.po" for lang in ("fr", "en")}


def catalogue(lang):
    with CATALOGUES[lang].open("rb") as handle:
        return read_po(handle)


def test_it_translates_every_french_message():
    untranslated = [message.id for message in catalogue("fr")
                    if message.id and (not message.string or message.fuzzy
                                       or (isinstance(message.string, tuple) and not all(message.string)))]
    assert untranslated == []


@pytest.mark.skipif(shutil.which("xgettext") is None,
                    reason="GNU gettext is needed to extract messages (CI installs it)")
def test_it_has_every_marked_string_in_the_catalogues(tmp_path):
    """Run makemessages into a copy of the tree and compare message ids with the committed files."""
    copy = tmp_path / "tree"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(
        ".venv", "var", ".git", "staticfiles", "__pycache__", "node_modules", "test-results"))
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "--locale=fr", "--locale=en",
         "--no-obsolete", "--ignore=.venv/*", "--ignore=bench/*"],
        cwd=copy, check=True, capture_output=True,
        # Named services: extraction needs none, and this stops the copy starting its own.
        env={**os.environ, "DATABASE_URL": "postgres://unused@localhost/unused",
             "REDIS_URL": "redis://localhost:1/0"},
    )
    for lang, path in CATALOGUES.items():
        with (copy / path.relative_to(ROOT)).open("rb") as handle:
            extracted = {message.id for message in read_po(handle) if message.id}
        committed = {message.id for message in catalogue(lang) if message.id}
        # A plural message's id is a (singular, plural) tuple: sort them all as text.
        assert sorted(extracted - committed, key=str) == [], f"run `manage.py makemessages -l {lang}`"
