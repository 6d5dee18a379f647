"""The language a person reads the site in, remembered for the pages without a /fr/ or /en/."""

from django.conf import settings
from django.utils.translation import get_language_from_path


class RememberLanguageMiddleware:
    """A page under /fr/ or /en/ stores its language in Django's language cookie.

    The admin and the sign-in redirect it makes have no language prefix: LocaleMiddleware
    picks their language from this cookie, so an organiser who uses the site in French gets
    the back office in French (and its French dates) whatever their browser's language.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        language = get_language_from_path(request.path_info)
        if (language and response.status_code < 400
                and request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) != language):
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME, language,
                max_age=settings.LANGUAGE_COOKIE_AGE, path=settings.LANGUAGE_COOKIE_PATH,
                domain=settings.LANGUAGE_COOKIE_DOMAIN, secure=settings.LANGUAGE_COOKIE_SECURE,
                httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
                samesite=settings.LANGUAGE_COOKIE_SAMESITE,
            )
        return response
