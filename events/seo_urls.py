"""Crawler files: served at the site root, outside the language prefix."""

from django.contrib.sitemaps.views import sitemap
from django.urls import path

from events import views
from events.sitemaps import sitemaps

urlpatterns = [
    path("sitemap.xml", sitemap, {"sitemaps": sitemaps}, name="sitemap"),
    path("robots.txt", views.robots_txt, name="robots_txt"),
]
