"""Static checks of the production deployment files: docker-compose.yml, Dockerfile, .dockerignore.

No Docker engine is needed: the compose file is read with PyYAML and its
``${VAR:-default}`` interpolation done here, the Dockerfile is read as text,
and the settings are loaded (in a subprocess, with exactly the environment a
container would get) to prove that the two agree.
"""

import http.server
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from django.urls import resolve

from racephoto.env import READ, parse_database_url

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Services that run the application image (and so load the settings).
APP_SERVICES = ("web", "worker", "migrate")
REQUIRED_SETTINGS = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS")
DATA_DIRS = ("MEDIA_ROOT", "PRIVATE_MEDIA_ROOT", "INDEX_DIR", "MODELS_DIR")
# What an operator exports before `docker compose up`; everything else has a default.
OPERATOR_ENV = {"SECRET_KEY": "s" * 50, "ALLOWED_HOSTS": "photos.example.org"}
BASE_IMAGE = "python:3.11-slim-bookworm"


# --- compose interpolation -----------------------------------------------------

class MissingVariable(LookupError):
    """A ``${VAR:?message}`` whose variable is not set."""


# $$, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, ${NAME?err},
# ${NAME:+alt}, ${NAME+alt}, $NAME. Nesting (${A:-${B}}) is not supported here.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^{}$]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        value = env.get(name)
        op = match["op"]
        if op is None:
            return value or ""
        missing = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return match["arg"] if missing else value
        if op.endswith("?"):
            if missing:
                raise MissingVariable(f"{name}: {match['arg']}")
            return value
        return "" if missing else match["arg"]  # "+"

    return _INTERPOLATION.sub(replace, text)


def interpolate_tree(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    return node


def iter_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from iter_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from iter_strings(value)


def test_it_interpolates_like_compose():
    env = {"SET": "value", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d}", env) == "value d d "
    assert interpolate("$$HOME ${SET} $SET ${UNSET}", env) == "$HOME value value "
    assert interpolate("${SET:?needed}", env) == "value"
    with pytest.raises(MissingVariable, match="EMPTY: needed"):
        interpolate("${EMPTY:?needed}", env)


# --- compose helpers -----------------------------------------------------------

@cache
def _raw_compose_text() -> str:
    return COMPOSE_FILE.read_text()


def raw_compose() -> dict:
    return yaml.safe_load(_raw_compose_text())


def compose(env: dict[str, str] | None = None) -> dict:
    return interpolate_tree(raw_compose(), OPERATOR_ENV if env is None else env)


def environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.split("=", 1) if "=" in item else (item, None) for item in env]
        return {name: value for name, value in pairs}
    return {name: None if value is None else str(value) for name, value in env.items()}


def volume_mounts(service: dict) -> dict[str, str | None]:
    """Mount target -> named volume (None for a bind mount or an anonymous volume)."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source"), volume["target"]
            named = volume.get("type", "volume") == "volume" and source
        else:
            parts = volume.split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
            named = source and not source.startswith((".", "/", "~", "$"))
        mounts[target.rstrip("/") or "/"] = source if named else None
    return mounts


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


# --- settings loaded in a clean process ------------------------------------------

_SETTINGS_PROBE = """
import json, runpy, sys
sys.modules["racephoto.embedded"] = None  # an unset DATABASE_URL/REDIS_URL must fail, not start servers
import racephoto.env
ns = runpy.run_path("racephoto/settings.py", run_name="settings_under_test")
print(json.dumps({
    "read": sorted(racephoto.env.READ),
    "DEBUG": ns["DEBUG"],
    "ALLOWED_HOSTS": ns["ALLOWED_HOSTS"],
    "DATABASE": {k: v for k, v in ns["DATABASES"]["default"].items() if k != "OPTIONS"},
    "REDIS_URL": ns["REDIS_URL"],
    "CELERY_BROKER_URL": ns["CELERY_BROKER_URL"],
    "dirs": {name: str(ns[name]) for name in ("MEDIA_ROOT", "PRIVATE_MEDIA_ROOT", "INDEX_DIR", "MODELS_DIR")},
}))
"""


def load_settings_in_subprocess(env: dict[str, str | None]) -> dict:
    """Run settings.py with exactly ``env`` (nothing inherited) and report what it saw."""
    clean_env = {name: value for name, value in env.items() if value is not None}
    result = subprocess.run(
        [sys.executable, "-c", _SETTINGS_PROBE],
        cwd=ROOT, env=clean_env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, (
        f"settings.py does not load with this environment:\n{result.stderr[-3000:]}"
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@cache
def _names_read_in_production() -> frozenset[str]:
    """Variables the settings read in production, S3 branch included."""
    env = environment(compose()["services"]["web"])
    env.update(STORAGE_BACKEND="s3", S3_BUCKET="race-photos")
    return frozenset(load_settings_in_subprocess(env)["read"])


# --- docker-compose.yml ------------------------------------------------------------

def test_it_parses_the_compose_file_with_every_service():
    services = raw_compose()["services"]
    assert {"db", "redis", "web", "worker", "migrate", "nginx"} <= set(services)


def test_it_uses_only_interpolation_compose_understands():
    # A malformed ${...} (e.g. "${VAR:default}") or a boolean environment value
    # (compose refuses `DEBUG: false`) is an error at `docker compose up`.
    raw = raw_compose()
    for text in iter_strings(raw):
        leftover = _INTERPOLATION.sub("", text)
        assert "$" not in leftover, f"invalid interpolation in {text!r}"
    for name, service in raw["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, dict):
            for key, value in env.items():
                assert not isinstance(value, bool), f"{name}: {key} must be quoted, not a boolean"


def test_it_runs_the_database_on_a_pgvector_image():
    db = compose()["services"]["db"]
    image = db["image"]
    assert image.startswith("pgvector/pgvector:"), image
    major = re.match(r"pg(\d+)", image.split(":", 1)[1])
    assert major, f"pin a PostgreSQL major version in the tag: {image}"
    # PostgreSQL 18+ images keep their data under /var/lib/postgresql/<major>/docker;
    # a volume on the old .../data path is refused at start-up.
    data_dir = "/var/lib/postgresql" if int(major.group(1)) >= 18 else "/var/lib/postgresql/data"
    assert volume_mounts(db).get(data_dir), f"db needs a named volume at {data_dir}"


def test_it_builds_web_worker_and_migrate_from_the_same_image():
    services = compose()["services"]
    builds = {name: (services[name].get("build"), services[name].get("image")) for name in APP_SERVICES}
    assert len(set(map(repr, builds.values()))) == 1, builds
    build, _image = builds["web"]
    assert build, "the application services must build ./Dockerfile"
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (ROOT / context / dockerfile).resolve() == DOCKERFILE


def test_it_sets_only_environment_variables_the_settings_read():
    known = set(READ) | _names_read_in_production()
    services = compose()["services"]
    for name in APP_SERVICES:
        unknown = set(environment(services[name])) - known
        assert not unknown, f"{name} sets variables settings.py never reads: {sorted(unknown)}"


def test_it_sets_the_required_production_settings():
    services = compose()["services"]
    for name in APP_SERVICES:
        env = environment(services[name])
        missing = [var for var in REQUIRED_SETTINGS if not env.get(var)]
        # Without DATABASE_URL/REDIS_URL the settings would start an embedded server
        # inside the container (migrate would migrate a throw-away database).
        assert not missing, f"{name} lacks {missing}"
        assert env.get("DEBUG", "0").lower() in ("0", "false", "no", "off"), f"{name} runs with DEBUG"


def test_it_refuses_to_start_without_a_secret_key():
    env_without_secret = {k: v for k, v in OPERATOR_ENV.items() if k != "SECRET_KEY"}
    with pytest.raises(MissingVariable, match="SECRET_KEY"):
        compose(env_without_secret)


@pytest.mark.parametrize("operator_env", [
    {},
    {"POSTGRES_DB": "photos", "POSTGRES_USER": "alice", "POSTGRES_PASSWORD": "s3cret-pw"},
], ids=["defaults", "overridden"])
def test_it_points_database_url_at_the_db_service(operator_env):
    services = compose({**OPERATOR_ENV, **operator_env})["services"]
    db_env = environment(services["db"])
    for name in APP_SERVICES:
        database = parse_database_url(environment(services[name])["DATABASE_URL"])
        assert database["HOST"] == "db"
        assert database["PORT"] in ("", "5432")
        assert database["NAME"] == db_env["POSTGRES_DB"]
        assert database["USER"] == db_env["POSTGRES_USER"]
        assert database["PASSWORD"] == db_env["POSTGRES_PASSWORD"]


def test_it_points_redis_url_at_the_redis_service():
    services = compose()["services"]
    assert "redis" in services
    for name in APP_SERVICES:
        url = urlsplit(environment(services[name])["REDIS_URL"])
        assert url.scheme in ("redis", "rediss")
        assert url.hostname == "redis"
        assert url.port in (None, 6379)


def test_it_loads_the_settings_from_the_compose_environment():
    seen = load_settings_in_subprocess(environment(compose()["services"]["web"]))
    assert seen["DEBUG"] is False
    assert seen["ALLOWED_HOSTS"] == ["photos.example.org"]
    assert seen["DATABASE"]["HOST"] == "db"
    assert urlsplit(seen["CELERY_BROKER_URL"]).hostname == "redis"
    assert seen["dirs"] == {
        "MEDIA_ROOT": "/data/media",
        "PRIVATE_MEDIA_ROOT": "/data/private",
        "INDEX_DIR": "/data/indexes",
        "MODELS_DIR": "/data/models",
    }


def test_it_keeps_data_directories_on_named_volumes():
    config = compose()
    declared = set(config.get("volumes") or {})
    image_env = dockerfile_env(final_stage())
    for name in ("web", "worker"):
        service = config["services"][name]
        env, mounts = environment(service), volume_mounts(service)
        for var in DATA_DIRS:
            path = env.get(var) or image_env.get(var)
            assert path, f"{name}: {var} is set neither in compose nor in the image"
            assert path == image_env.get(var), f"{name}: {var}={path} differs from the image's"
            volume = mounts.get(path.rstrip("/"))
            assert volume, f"{name}: nothing persistent is mounted at {var}={path}"
            assert volume in declared, f"{name}: volume {volume!r} missing from top-level volumes"
    for name, service in config["services"].items():
        for volume in volume_mounts(service).values():
            assert volume is None or volume in declared, f"{name}: undeclared volume {volume!r}"


def test_it_starts_web_and_worker_after_migrations():
    services = compose()["services"]
    for name in ("web", "worker"):
        deps = depends_on(services[name])
        assert deps.get("migrate") == "service_completed_successfully", f"{name}: {deps}"
        assert deps.get("db") == "service_healthy", f"{name}: {deps}"
        assert deps.get("redis") == "service_healthy", f"{name}: {deps}"
    migrate = services["migrate"]
    command = migrate["command"]
    command = shlex.split(command) if isinstance(command, str) else command
    assert "manage.py" in command and "migrate" in command, command
    # A one-shot job: with restart always/unless-stopped it would never "complete".
    assert migrate.get("restart", "no") in ("no", "on-failure"), migrate.get("restart")
    assert depends_on(migrate).get("db") == "service_healthy"


def test_it_gives_a_health_check_to_every_service_waited_on_as_healthy():
    services = compose()["services"]
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if condition == "service_healthy":
                check = services[dependency].get("healthcheck")
                # A service of the image without a check of its own has the image's.
                from_image = (check is None and services[dependency].get("build")
                              and any(keyword == "HEALTHCHECK" for keyword, _ in final_stage()))
                assert from_image or (check and check.get("test") and not check.get("disable")), (
                    f"{name} waits for {dependency} to be healthy but it has no health check"
                )


def test_it_runs_gunicorn_on_web_and_celery_on_worker():
    services = compose()["services"]
    web, worker = services["web"], services["worker"]
    assert "command" not in web, "web should run the image's gunicorn CMD"
    # Visitors reach gunicorn through nginx (public media first): web publishes nothing.
    assert not web.get("ports"), web.get("ports")
    command = worker["command"]
    command = shlex.split(command) if isinstance(command, str) else command
    assert command[:4] == ["celery", "-A", "racephoto", "worker"], command
    # The image's health check probes gunicorn, which the worker does not run.
    check = worker.get("healthcheck") or {}
    assert check.get("disable") or "healthz" not in json.dumps(check.get("test"))


# --- nginx: the front server, public media ----------------------------------------

NGINX_CONF = ROOT / "deploy" / "nginx.conf"


def nginx_conf_mount(service: dict) -> str:
    for entry in service.get("volumes") or []:
        source, target = entry.split(":")[:2]
        if target == "/etc/nginx/conf.d/default.conf":
            return source
    raise AssertionError("nginx.conf is not mounted as the default server")


def test_it_publishes_the_site_through_nginx_with_only_the_public_media_volume():
    services = compose()["services"]
    nginx, web = services["nginx"], services["web"]
    published = [str(port) for port in nginx.get("ports") or []]
    assert published == ["8000:8080"], published
    assert (ROOT / nginx_conf_mount(nginx)).resolve() == NGINX_CONF
    assert depends_on(nginx) == {"web": "service_healthy"}

    image_env = dockerfile_env(final_stage())
    web_mounts = volume_mounts(web)
    media_volume = web_mounts[image_env["MEDIA_ROOT"]]
    mounts = [entry for entry in nginx["volumes"] if not entry.startswith("./")]
    # The same volume the web server writes previews to, read-only, at the same path.
    assert mounts == [f"{media_volume}:{image_env['MEDIA_ROOT']}:ro"], mounts
    assert web_mounts[image_env["PRIVATE_MEDIA_ROOT"]] not in {m.split(":")[0] for m in mounts}


def test_its_nginx_serves_the_public_folders_with_the_settings_cache_header():
    conf = NGINX_CONF.read_text()
    [location] = re.findall(r'location ~ "\^/media/\(([a-z|]+)\)/', conf)
    assert tuple(location.split("|")) == settings.PUBLIC_MEDIA_FOLDERS
    assert re.search(r"alias /data/media/\$1/", conf)
    assert f'add_header Cache-Control "{settings.MEDIA_CACHE_CONTROL}" always;' in conf
    assert "set $web http://web:8000;" in conf
    assert "/data/private" not in conf


# Runs deploy/nginx.conf for real: the paths and the upstream are the only changes.
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


class Upstream(http.server.BaseHTTPRequestHandler):
    """Stands in for gunicorn: answers with what it received."""

    def do_GET(self):
        body = json.dumps({"path": self.path, "host": self.headers["Host"],
                           "proto": self.headers["X-Forwarded-Proto"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def nginx(service_root):
    """deploy/nginx.conf on a free port, media from a temp dir, gunicorn replaced by Upstream."""
    root = service_root.parent  # outside pytest's tmp dirs, which nginx's workers cannot enter
    media = root / "data" / "media"
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    site = (NGINX_CONF.read_text().replace("/data/media", str(media))
            .replace("http://web:8000", f"http://127.0.0.1:{upstream.server_port}")
            .replace("listen 8080;", f"listen 127.0.0.1:{port};"))
    (root / "site.conf").write_text(site)
    (root / "nginx.conf").write_text(
        f"daemon off; pid {root}/nginx.pid; error_log stderr;"
        + (" user root;" if os.geteuid() == 0 else "")
        # The official image's nginx.conf includes the full mime.types around conf.d.
        + " events {} http { types { image/jpeg jpg; image/png png; image/webp webp;"
        " text/html html; }"
        f" access_log off; client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;"
        f" include {root}/site.conf; }}")
    server = subprocess.Popen([NGINX, "-c", str(root / "nginx.conf"), "-p", str(root)],
                              stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nginx did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
    try:
        yield base, media, root / "data" / "private"
    finally:
        server.terminate()
        server.wait(timeout=10)
        upstream.shutdown()


def fetch(url: str, method: str = "GET") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, method=method, headers={"Host": "photos.example.org"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")
def test_its_nginx_serves_previews_and_thumbnails_and_nothing_private(nginx):
    base, media, private = nginx
    image = (ROOT / "static" / "apple-touch-icon.png").read_bytes()
    for folder in ("previews", "thumbnails", "watermarks"):
        (media / folder / "7").mkdir(parents=True)
        (media / folder / "7" / "12-0123abcd.png").write_bytes(image)
    (private / "web" / "7").mkdir(parents=True)
    (private / "web" / "7" / "12-secret.png").write_bytes(b"clean full-size copy")
    (media / "previews" / "7" / "13-link.png").symlink_to(private / "web" / "7" / "12-secret.png")
    (media / "previews" / "7" / "14-page.html").write_text("<script>alert(1)</script>")

    for folder in ("previews", "thumbnails"):
        status, headers, body = fetch(f"{base}/media/{folder}/7/12-0123abcd.png")
        assert (status, headers["Content-Type"], body) == (200, "image/png", image)
        assert headers["Cache-Control"] == settings.MEDIA_CACHE_CONTROL
        assert headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/media/watermarks/7/12-0123abcd.png", "/media/previews/7/13-link.png",
                 "/media/previews/7/14-page.html", "/media/previews/7/",
                 "/media/previews/7/..%2f..%2f..%2fprivate/web/7/12-secret.png",
                 "/media/previews/7/%2e%2e/%2e%2e/%2e%2e/private/web/7/12-secret.png",
                 "/media/private/web/7/12-secret.png"):
        status, _headers, body = fetch(base + path)
        assert b"clean full-size copy" not in body, path
        if status == 200:  # normalised out of /media/: gunicorn's to refuse (test_media.py)
            assert json.loads(body)["path"] == path, path
        else:
            assert status in (403, 404), (path, status)
    assert fetch(f"{base}/media/previews/7/12-0123abcd.png", "POST")[0] == 403
    # Everything else reaches gunicorn, with the visitor's Host and scheme.
    status, _headers, body = fetch(f"{base}/fr/events/?page=2")
    assert status == 200
    assert json.loads(body) == {"path": "/fr/events/?page=2", "host": "photos.example.org",
                                "proto": "http"}


# --- Dockerfile ------------------------------------------------------------------

@cache
def dockerfile_instructions() -> tuple[tuple[str, str], ...]:
    """(KEYWORD, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit between continuation lines
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends with a continuation backslash"
    return tuple(instructions)


def stages() -> list[list[tuple[str, str]]]:
    result = []
    for keyword, args in dockerfile_instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def dockerfile_env(stage) -> dict[str, str]:
    env = {}
    for keyword, args in stage:
        if keyword == "ENV":
            tokens = shlex.split(args)
            if tokens and "=" not in tokens[0]:  # legacy "ENV NAME value"
                env[tokens[0]] = " ".join(tokens[1:])
            else:
                env.update(token.split("=", 1) for token in tokens)
    return env


def shell_commands(stage) -> list[list[str]]:
    """Each simple command of each RUN, as tokens (split on &&, ||, ;)."""
    commands = []
    for keyword, args in stage:
        if keyword == "RUN":
            args = re.sub(r"^(--\S+\s+)+", "", args)  # RUN --mount=... options
            for part in re.split(r"&&|\|\||;", args):
                tokens = shlex.split(part)
                if tokens:
                    commands.append(tokens)
    return commands


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"use the exec (JSON) form: {args}"
    return json.loads(args)


def test_it_builds_the_image_in_several_stages():
    all_stages = stages()
    assert len(all_stages) >= 2
    froms = [stage[0][1].split() for stage in all_stages]
    assert all(words[0] == BASE_IMAGE for words in froms), froms
    earlier = {words[2] for words in froms[:-1] if len(words) == 3 and words[1].upper() == "AS"}
    copies = [args.split() for keyword, args in final_stage() if keyword == "COPY"]
    assert any(
        words[0] in {f"--from={name}" for name in earlier} and words[1:] == ["/opt/venv", "/opt/venv"]
        for words in copies
    ), "the final stage must copy /opt/venv from the builder stage"
    assert dockerfile_env(final_stage()).get("PATH", "").startswith("/opt/venv/bin:")


def test_it_installs_facenet_without_its_dependencies():
    installs = [
        command for stage in stages() for command in shell_commands(stage)
        if command[:2] == ["pip", "install"] or command[1:4] == ["-m", "pip", "install"]
    ]
    assert any("requirements.txt" in command for command in installs)
    nodeps = [command for command in installs if "requirements-nodeps.txt" in command]
    assert nodeps, "requirements-nodeps.txt is never installed"
    # facenet-pytorch's own pins would drag in an old torch.
    assert all("--no-deps" in command for command in nodeps), nodeps


def test_it_runs_as_a_non_root_user():
    stage = final_stage()
    users = [(index, args) for index, (keyword, args) in enumerate(stage) if keyword == "USER"]
    assert users, "the final stage never leaves root"
    index, user = users[-1]
    name = user.split(":")[0]
    assert name not in ("root", "0", ""), user
    cmd_index = max(i for i, (keyword, _) in enumerate(stage) if keyword == "CMD")
    assert index < cmd_index, "USER must come before CMD"
    created = [command for command in shell_commands(stage) if command[0] == "useradd"]
    assert any(command[-1] == name and "10001" in command for command in created), created


def test_it_collects_static_files_with_settings_that_start_nothing():
    collect = [
        command for command in shell_commands(final_stage())
        if "manage.py" in command and "collectstatic" in command
    ]
    assert collect, "the final stage does not run collectstatic"
    command = collect[0]
    assert "--noinput" in command
    build_env = dict(
        token.split("=", 1)
        for token in command[: command.index("manage.py")]
        if re.match(r"^[A-Z_][A-Z0-9_]*=", token)
    )
    assert set(REQUIRED_SETTINGS) <= set(build_env), build_env
    # Loads with DEBUG off and, DATABASE_URL/REDIS_URL being set, without
    # starting the embedded servers (the probe makes that an error).
    seen = load_settings_in_subprocess(build_env)
    assert seen["DEBUG"] is False


def test_it_sets_data_directories_and_unbuffered_output_in_the_image():
    env = dockerfile_env(final_stage())
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert {var: env.get(var) for var in DATA_DIRS} == {
        "MEDIA_ROOT": "/data/media",
        "PRIVATE_MEDIA_ROOT": "/data/private",
        "INDEX_DIR": "/data/indexes",
        "MODELS_DIR": "/data/models",
    }


def test_it_serves_gunicorn_and_probes_healthz():
    stage = final_stage()
    cmd = web_command()
    assert cmd[0] == "gunicorn", cmd
    module, attribute = settings.WSGI_APPLICATION.rsplit(".", 1)
    assert cmd[1] == f"{module}:{attribute}", cmd
    assert cmd[cmd.index("--bind") + 1] == "0.0.0.0:8000", cmd
    exposed = [args.split() for keyword, args in stage if keyword == "EXPOSE"]
    assert ["8000"] in exposed or ["8000/tcp"] in exposed, exposed

    checks = [args for keyword, args in stage if keyword == "HEALTHCHECK"]
    assert checks, "the final stage has no HEALTHCHECK"
    probe = exec_form(checks[-1].split(" CMD ", 1)[1].strip())
    assert probe[:2] == ["python", "-c"], probe  # curl is not installed
    code = probe[2]
    compile(code, "<HEALTHCHECK>", "exec")
    assert "http://127.0.0.1:8000/healthz" in code
    # The path exists, and is probed over plain http without a redirect to https.
    assert resolve("/healthz").url_name == "healthz"
    assert any(re.search(pattern, "healthz") for pattern in settings.SECURE_REDIRECT_EXEMPT)
    # Django answers 400 to a Host outside ALLOWED_HOSTS: the probe must send one of them.
    assert "ALLOWED_HOSTS" in code and "Host" in code


# --- .dockerignore -----------------------------------------------------------------

def _dockerignore_regex(pattern: str) -> re.Pattern:
    """Docker's glob: * and ? stay within one path segment, ** spans any number."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            regex, i = regex + pattern[i:end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex + r"\Z")


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (later lines win, ! re-includes)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # the path and its parents
    ignored = False
    for line in DOCKERIGNORE.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        regex = _dockerignore_regex(pattern.lstrip("!").removeprefix("./").strip("/"))
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


def test_it_keeps_local_state_and_secrets_out_of_the_build_context():
    for path in (".venv/bin/python", "var/postgres/PG_VERSION", ".git/HEAD", ".env",
                 "staticfiles/staticfiles.json", "racephoto/__pycache__/settings.cpython-311.pyc",
                 "locale/fr/LC_MESSAGES/django.mo", ".pytest_cache/README.md"):
        assert dockerignored(path), f"{path} would be sent to the Docker build"
    for path in ("Dockerfile", "manage.py", "requirements.txt", "requirements-nodeps.txt",
                 "racephoto/settings.py", "static/css/site.css", "templates/base.html",
                 "locale/fr/LC_MESSAGES/django.po"):
        assert not dockerignored(path), f"{path} is needed by the build but ignored"


# The image's CMD starts gunicorn through this: its memory in transparent huge pages.
HUGE_PAGES = ["python", "-m", "racephoto.hugepages"]


def image_command() -> list[str]:
    return exec_form([args for keyword, args in final_stage() if keyword == "CMD"][-1])


def web_command() -> list[str]:
    """The image's CMD without what starts it with huge pages (racephoto/hugepages.py)."""
    command = image_command()
    return command[len(HUGE_PAGES):] if command[:len(HUGE_PAGES)] == HUGE_PAGES else command


def test_the_images_web_command_runs_gunicorn_with_huge_pages_as_a_default():
    from racephoto.hugepages import VARIABLE

    command = image_command()
    assert command[:len(HUGE_PAGES) + 1] == [*HUGE_PAGES, "gunicorn"], command
    # Set by neither the command nor the image's environment: an operator's -e is what the
    # web server starts from, and the worker and migrate keep exactly the operator's value.
    assert not [word for word in command if word.startswith(f"{VARIABLE}=")], command
    assert VARIABLE not in dockerfile_env(final_stage())
    for name in APP_SERVICES:
        assert VARIABLE not in environment(compose()["services"][name]), name


@pytest.mark.parametrize(("operator_value", "web_value"), [
    (None, "glibc.malloc.hugetlb=1"),
    ("glibc.malloc.hugetlb=0", "glibc.malloc.hugetlb=0"),  # the operator turned them off
    ("glibc.malloc.arena_max=2", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
])
def test_the_images_web_command_keeps_the_operators_glibc_tunables(operator_value, web_value):
    from racephoto.hugepages import VARIABLE

    # The image's CMD as it is, gunicorn and its arguments replaced by a process that says
    # which tunables it was started with (python: the image's virtualenv is on PATH).
    command = image_command()
    start = command[:command.index("gunicorn")]
    start = [sys.executable if word == "python" else word for word in start]
    env = {key: value for key, value in os.environ.items() if key != VARIABLE}
    if operator_value is not None:
        env[VARIABLE] = operator_value
    probe = [sys.executable, "-c", f"import os; print(os.environ.get({VARIABLE!r}))"]

    result = subprocess.run([*start, *probe], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == web_value
