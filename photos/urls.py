from django.urls import path

from photos import views

app_name = "photos"
urlpatterns = [
    path("staff/events/<slug:slug>/upload/", views.upload_page, name="upload"),
    path("staff/events/<slug:slug>/upload/file/", views.upload_file, name="upload_file"),
    path("staff/events/<slug:slug>/processing/", views.processing_status, name="processing_status"),
    path("staff/events/<slug:slug>/processing/retry/", views.retry_failed, name="retry_failed"),
]
