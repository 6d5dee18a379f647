from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path("api-token/", views.api_token, name="api_token"),
    path("privacy/", views.privacy, name="privacy"),
    path("privacy/claim/", views.claim_bib, name="claim_bib"),
    path("privacy/claims/<int:claim_id>/", views.set_face_search, name="set_face_search"),
    path("privacy/erasure/", views.request_erasure, name="request_erasure"),
]
