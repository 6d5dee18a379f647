import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from racephoto.health import health_report, prometheus_metrics


@never_cache
@require_GET
def healthz(request):
    report, serving = health_report()
    return JsonResponse(report, status=200 if serving else 503)


@never_cache
@require_GET
def metrics(request):
    # Figures are not secret but they describe the business; when a token is
    # configured, only the scraper that knows it may read them.
    token = settings.METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(prometheus_metrics(), content_type="text/plain; version=0.0.4; charset=utf-8")
