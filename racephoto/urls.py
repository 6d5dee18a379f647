from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import include, path

from mlpipeline import views as mlpipeline_views
from racephoto import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/models/", mlpipeline_views.model_status, name="model-status"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("events.seo_urls")),
]

# Public pages carry their language in the URL (/fr/..., /en/...) so search
# engines index both versions and a shared link opens in the sender's language.
urlpatterns += i18n_patterns(
    path("", include("events.urls")),
    path("", include("photos.urls")),
    # Plain Django login until allauth arrives with the accounts work.
    path("accounts/", include("django.contrib.auth.urls")),
)
