from django.urls import path

from commerce import views

app_name = "commerce"

urlpatterns = [
    path("events/<slug:slug>/cart/", views.cart, name="cart"),
    path("events/<slug:slug>/cart/add/", views.add_to_cart, name="add"),
    path("events/<slug:slug>/cart/remove/", views.remove_from_cart, name="remove"),
    path("events/<slug:slug>/cart/swap/", views.swap, name="swap"),
    path("events/<slug:slug>/cart/discount/", views.discount, name="discount"),
    path("events/<slug:slug>/checkout/", views.checkout, name="checkout"),
    path("orders/resend/", views.resend_links, name="resend"),
    path("orders/<str:token>/", views.order_page, name="order"),
    path("orders/<str:token>/local-card/", views.local_card_payment, name="local-card"),
    path("orders/<str:token>/download/<str:signed>/", views.download, name="download"),
]
