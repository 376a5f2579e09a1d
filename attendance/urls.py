from django.urls import path

from attendance import views

urlpatterns = [
    path("kiosk/", views.kiosk, name="kiosk"),
]
