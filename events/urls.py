from django.urls import path

from events import views

app_name = "events"
urlpatterns = [
    path("", views.event_list, name="list"),
    path("events/<slug:slug>/", views.event_detail, name="detail"),
    path("events/<slug:slug>/logo", views.event_logo, name="logo"),
    path("organisers/<slug:slug>/", views.organisation_detail, name="organisation"),
]
