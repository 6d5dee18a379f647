from django.contrib.sitemaps import Sitemap
from django.urls import reverse

from events.models import Event


class _BilingualSitemap(Sitemap):
    # Every URL once per language, each entry naming its translations, so
    # search engines index /fr/ and /en/ as versions of the same page.
    i18n = True
    alternates = True
    # Django's x-default strips the default language's prefix, which this site
    # keeps (/fr/...): the result would be a redirect, not the page the event
    # pages themselves name as x-default. Those <link> tags carry it instead.
    x_default = False


class PageSitemap(_BilingualSitemap):
    changefreq = "daily"
    priority = 0.6

    def items(self):
        return ["events:list"]

    def location(self, name):
        return reverse(name)


class EventSitemap(_BilingualSitemap):
    changefreq = "daily"
    priority = 0.8

    def items(self):
        # An event that asks search engines to stay away is not offered to them either.
        return (Event.objects.filter(is_published=True, search_engines_may_index=True)
                .order_by("-date", "pk"))

    def lastmod(self, event):
        return event.updated_at


sitemaps = {"pages": PageSitemap, "events": EventSitemap}
