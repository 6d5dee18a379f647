"""How long `manage.py run` (what `make run` calls) takes to show a usable demo.

    python bench/demo.py [--var-dir DIR] [--port 8766] [--timeout 600]

Starts `run` on a fresh data dir (default: a new temp dir) and prints, in seconds
after the start: the demo page served, the first demo photo ready, every demo
photo ready, and bib search finding all photos of bib 102 (the face-linked one
included). Stops everything it started.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
READY = re.compile(r"<strong>(\d+)</strong>\s*photos? (?:ready|prête)", re.S)


def ready_on_page(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            html = response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    found = READY.search(html)
    return int(found.group(1)) if found else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var-dir", type=Path, default=None)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    var_dir = args.var_dir or Path(tempfile.mkdtemp(prefix="racephoto-demo-")) / "var"
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DEBUG="1", RACEPHOTO_VAR_DIR=str(var_dir))
    url = f"http://127.0.0.1:{args.port}/en/events/demo-10k-lyon/"
    log = var_dir.parent / "run.log"
    var_dir.parent.mkdir(parents=True, exist_ok=True)

    from events.demo import scenes

    total = len(scenes.PHOTOS)
    started = time.monotonic()
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "manage.py", "run", "--port", str(args.port)],
                                   cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    marks: dict[str, float] = {}
    try:
        while "all ready" not in marks:
            elapsed = time.monotonic() - started
            if process.poll() is not None or elapsed > args.timeout:
                print(f"run stopped or timed out after {elapsed:.0f}s; log: {log}", file=sys.stderr)
                return 1
            ready = ready_on_page(url)
            if ready is not None:
                marks.setdefault("page served", elapsed)
                if ready:
                    marks.setdefault("first photo ready", elapsed)
                if ready >= total:
                    marks["all ready"] = elapsed
            time.sleep(0.5)
        # The web server answers, so the database is up: ask bib search as a runner would.
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "racephoto.settings")
        import django

        django.setup()
        from events.models import Event
        from search.services import photos_by_bib

        event = Event.objects.get(slug="demo-10k-lyon")
        wanted = {photo.name for photo in scenes.photos_of("102")}
        while True:
            names = set(event.photos.filter(pk__in=[m.photo_id for m in photos_by_bib(event, "102")])
                        .values_list("original_name", flat=True))
            if names >= wanted:
                marks["bib 102: all its photos"] = time.monotonic() - started
                break
            if time.monotonic() - started > args.timeout:
                print(f"bib search found {sorted(names)}, wanted {sorted(wanted)}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        for what, seconds in marks.items():
            print(f"{what:28} {seconds:6.1f} s")
        print(f"({total} demo photos, {os.cpu_count()} cores, log {log})")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
