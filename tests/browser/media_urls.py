"""The site's URLs plus /media/, for browser tests that must see real thumbnails.

Test-only: serving public media in the project itself is the deployment's job.
"""

from django.conf import settings
from django.urls import re_path
from django.views.static import serve

from racephoto.urls import urlpatterns as site_urlpatterns


def media(request, path):
    # MEDIA_ROOT is each test's own temp dir (root conftest): read it per request.
    return serve(request, path, document_root=settings.MEDIA_ROOT)


urlpatterns = [re_path(r"^media/(?P<path>.+)$", media), *site_urlpatterns]
