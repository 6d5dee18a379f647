from django.conf import settings
from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.views import admin_login
from mlpipeline import views as mlpipeline_views
from racephoto import views

# Every sign-in goes through allauth's form, which rate-limits failed attempts;
# the admin's own password form would be an unthrottled way around it.
admin.site.login = admin_login

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    # Public derivatives when Django serves them itself (SERVE_MEDIA); a front web server
    # or the S3 bucket otherwise, and then this answers 404.
    re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.+)$", views.public_media,
            name="media"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/models/", mlpipeline_views.model_status, name="model-status"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("racephoto.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a file: the site's CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("i18n/", include("django.conf.urls.i18n")),
    # Stripe's signed webhooks (dj-stripe verifies them; commerce.webhooks acts on them).
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("", include("events.seo_urls")),
]

# Public pages carry their language in the URL (/fr/..., /en/...) so search
# engines index both versions and a shared link opens in the sender's language.
urlpatterns += i18n_patterns(
    path("", include("events.urls")),
    path("", include("search.urls")),
    path("", include("photos.urls")),
    path("", include("commerce.urls")),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
)
