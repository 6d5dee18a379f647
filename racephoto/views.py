import hmac
import logging
import mimetypes
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET, require_safe
from django.views.static import serve

from accounts.roles import is_platform_admin
from racephoto.health import health_report, prometheus_metrics

logger = logging.getLogger(__name__)

FAVICON = settings.BASE_DIR / "static" / "favicon.ico"


def _bearer_matches(request, token: str) -> bool:
    supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(supplied.encode(), token.encode())


def _may_see_health_details(request) -> bool:
    if _bearer_matches(request, settings.HEALTH_TOKEN or settings.METRICS_TOKEN):
        return True
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return False  # no session to look up: the load balancer's probe
    try:
        return is_platform_admin(request.user)
    except Exception:  # the session lives in the database, which may be the thing that is down
        logger.warning("healthz: could not read the session", exc_info=True)
        return False


@never_cache
@require_GET
def healthz(request):
    # Anyone may learn whether the instance serves; file paths, host names and process
    # ids in the checks are for operators only.
    report, serving = health_report()
    if not _may_see_health_details(request):
        report = {"status": report["status"]}
    return JsonResponse(report, status=200 if serving else 503)


@never_cache
@require_GET
def metrics(request):
    # Figures are not secret but they describe the business; when a token is
    # configured, only the scraper that knows it may read them.
    token = settings.METRICS_TOKEN
    if token and not _bearer_matches(request, token):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(prometheus_metrics(), content_type="text/plain; version=0.0.4; charset=utf-8")


@require_safe
def public_media(request, path: str):
    """A watermarked preview or thumbnail from MEDIA_ROOT (SERVE_MEDIA, see settings).

    Anything else answers 404: another folder of the public storage, a name with
    empty, ``.`` or ``..`` parts, a symbolic link that leads out of its folder, a
    file that is not an image. The private storage is in no way reachable.
    """
    if not settings.SERVE_MEDIA:
        raise Http404("Media are not served by this process.")
    parts = path.split("/")
    if (len(parts) < 2 or parts[0] not in settings.PUBLIC_MEDIA_FOLDERS
            or any(part in ("", ".", "..") or "\\" in part or "\x00" in part for part in parts)):
        raise Http404("Not a public file.")
    folder = (Path(settings.MEDIA_ROOT) / parts[0]).resolve()
    target = folder.joinpath(*parts[1:]).resolve()
    private = Path(settings.PRIVATE_MEDIA_ROOT).resolve()
    if not target.is_relative_to(folder) or target.is_relative_to(private) or not target.is_file():
        raise Http404("Not a public file.")
    content_type, _encoding = mimetypes.guess_type(target.name)
    if not (content_type or "").startswith("image/"):
        raise Http404("Not a public file.")
    response = serve(request, str(target.relative_to(folder)), document_root=str(folder))
    response["Cache-Control"] = settings.MEDIA_CACHE_CONTROL
    if parts[1].isdigit() and not _event_may_be_indexed(int(parts[1])):
        response["X-Robots-Tag"] = "noindex"
    return response


def _event_may_be_indexed(event_id: int) -> bool:
    """Derivatives live under <folder>/<event id>/: the event's "search engines may index"
    switch reaches its photo files too (robots.txt says the same to nginx's visitors)."""
    from django.apps import apps  # events sits above racephoto: no import at module level

    return not apps.get_model("events", "Event").objects.filter(
        pk=event_id, search_engines_may_index=False).exists()


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request):
    # Browsers ask for /favicon.ico on pages that do not link an icon (the admin's, a PDF).
    return FileResponse(FAVICON.open("rb"), content_type="image/x-icon")
