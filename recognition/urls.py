from django.urls import path

from recognition import views

urlpatterns = [
    path("faces/<int:pk>/<str:kind>/", views.face_file, name="face-file"),
    path("recognize/", views.recognize_page, name="recognize"),
]
