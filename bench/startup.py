"""Time from `manage.py run` (what `make run` calls) to the first served demo page.

    python bench/startup.py [--var-dir DIR] [--port 8765]

With a fresh --var-dir (the default: a new temp dir) this includes initdb,
migrations and the demo data; run it again with the same --var-dir for a warm
start. Prints seconds; stops everything it started.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var-dir", type=Path, default=None)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    var_dir = args.var_dir or Path(tempfile.mkdtemp(prefix="racephoto-bench-")) / "var"
    fresh = not var_dir.exists()
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DEBUG="1", RACEPHOTO_VAR_DIR=str(var_dir))
    url = f"http://127.0.0.1:{args.port}/fr/events/demo-10k-lyon/"

    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "manage.py", "run", "--port", str(args.port)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            elapsed = time.monotonic() - started
            if process.poll() is not None:
                print(f"run exited with code {process.returncode} after {elapsed:.1f}s", file=sys.stderr)
                return 1
            if elapsed > args.timeout:
                print(f"no page after {args.timeout:.0f}s", file=sys.stderr)
                return 1
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        served = time.monotonic() - started
        print(f"{'cold' if fresh else 'warm'} start: demo page served {served:.1f}s after `run` "
              f"(var dir {var_dir})")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
