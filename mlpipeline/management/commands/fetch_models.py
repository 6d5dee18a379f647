"""``manage.py fetch_models``: put the weights that no package index ships into MODELS_DIR.

The models of the registry that name a ``download_url`` (FaceNet VGGFace2 and CLIP
ViT-B-32 today) publish their weights as plain files. On a machine that is online this
command downloads them; on one that is not, ``--from DIR`` copies them from a folder (a
USB stick, a mounted share). Either way each file is checked by loading it with its
model before it is moved into place, so a truncated download never replaces a working
file.
This is the only place in the project that downloads anything, and only
when an operator runs it.
"""

import hashlib
import shutil
import tempfile
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from mlpipeline.inference import registry


def verify(name: str, path: Path) -> None:
    """Load the file with the model it is for; raises when it does not fit."""
    registry.downloadable_models()[name](weights_path=path).ensure_loaded()


class Command(BaseCommand):
    help = _("Download (or copy with --from) the FaceNet and CLIP weights into MODELS_DIR.")

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="source", type=Path,
                            help=_("Copy the files from this folder instead of downloading."))
        parser.add_argument("--only", choices=sorted(registry.downloadable_models()),
                            action="append",
                            help=_("Only this file (may be repeated)."))
        parser.add_argument("--force", action="store_true",
                            help=_("Replace files that are already there."))

    def handle(self, *args, **options):
        target_dir = Path(settings.MODELS_DIR)
        target_dir.mkdir(parents=True, exist_ok=True)
        failures = []
        for name in options["only"] or sorted(registry.downloadable_models()):
            target = target_dir / name
            if target.exists() and not options["force"]:
                self.stdout.write(_("%(name)s is already in %(dir)s.")
                                  % {"name": name, "dir": target_dir})
                continue
            try:
                self._fetch(name, target, options["source"])
            except Exception as exc:
                failures.append(name)
                self.stderr.write(_("%(name)s: %(error)s") % {"name": name, "error": exc})
        if failures:
            raise CommandError(_("Not installed: %(names)s.") % {"names": ", ".join(failures)})
        self.stdout.write(_("Restart the workers so they load the new models, then run "
                            "manage.py process_event EVENT to process photos again with them."))

    def _fetch(self, name: str, target: Path, source: Path | None) -> None:
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{name}.",
                                         delete=False) as partial:
            temporary = Path(partial.name)
        try:
            if source is not None:
                origin = source / name
                if not origin.is_file():
                    raise FileNotFoundError(_("no file %(path)s") % {"path": origin})
                shutil.copyfile(origin, temporary)
            else:
                url = registry.downloadable_models()[name].download_url
                self.stdout.write(_("Downloading %(url)s…") % {"url": url})
                with urllib.request.urlopen(url, timeout=60) as response, \
                        open(temporary, "wb") as output:
                    shutil.copyfileobj(response, output, length=1 << 20)
            verify(name, temporary)
            temporary.replace(target)
        finally:
            temporary.unlink(missing_ok=True)
        with open(target, "rb") as handle:  # hundreds of MB: hashed in chunks, not read whole
            digest = hashlib.file_digest(handle, "sha256").hexdigest()[:16]
        self.stdout.write(_("%(name)s installed (%(size).1f MB, sha256 %(digest)s…).")
                          % {"name": name, "size": target.stat().st_size / 1e6, "digest": digest})
