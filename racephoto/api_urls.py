"""The REST API, version 1: /api/v1/. Token (``Authorization: Token <key>``) or session auth."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from events.api import EventViewSet
from photos import api as photos_api
from search import api as search_api
from search import public_api

app_name = "api"

router = SimpleRouter()
router.register("events", EventViewSet, basename="event")

urlpatterns = [
    path("", include(router.urls)),
    path("events/<slug:slug>/photos/", photos_api.event_photos, name="event-photos"),
    path("events/<slug:slug>/processing/", photos_api.event_processing, name="event-processing"),
    path("photos/<int:pk>/", photos_api.photo_detail, name="photo-detail"),
    path("events/<slug:slug>/selfie-search/", search_api.selfie_search, name="selfie-search"),
    # The runner's side: public, no sign-in, the same rules as the pages.
    path("events/<slug:slug>/search/", public_api.EventSearch.as_view(), name="search"),
    path("events/<slug:slug>/public-photos/", public_api.EventPhotos.as_view(),
         name="public-photos"),
    path("events/<slug:slug>/public-photos/<int:photo_id>/", public_api.EventPhoto.as_view(),
         name="public-photo"),
]
