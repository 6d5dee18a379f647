"""What every template may use: the platform's name and the current page in each language."""

from django.conf import settings
from django.urls import translate_url


def site(request):
    def language_links():
        # The page being read, in each language, with its query kept (a home-page search
        # or a bib search survives switching language).
        path = request.get_full_path()
        return [{"code": code, "name": name, "path": translate_url(path, code)}
                for code, name in settings.LANGUAGES]

    # Called lazily by the template: pages that never draw the switch never resolve URLs.
    return {"SITE_NAME": settings.SITE_NAME, "language_links": language_links}
