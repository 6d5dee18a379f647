from django.urls import path

from search import views

app_name = "search"
urlpatterns = [
    path("events/<slug:slug>/photos/", views.event_photos, name="photos"),
    path("events/<slug:slug>/photos/<int:photo_id>/", views.photo_detail, name="photo"),
    path("events/<slug:slug>/by-time/", views.timeline, name="timeline"),
    path("events/<slug:slug>/selfie/", views.selfie_search, name="selfie"),
]
