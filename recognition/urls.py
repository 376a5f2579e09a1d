from django.urls import path

from recognition import views

urlpatterns = [
    path("faces/<int:pk>/<str:kind>/", views.face_file, name="face-file"),
    path("people/<int:pk>/faces/", views.gallery, name="gallery"),
    path("people/<int:pk>/faces/<int:face_pk>/delete/", views.gallery_delete, name="gallery-delete"),
    path("people/<int:pk>/faces/<int:face_pk>/primary/", views.gallery_primary, name="gallery-primary"),
    path("people/<int:pk>/erase/<int:request_pk>/", views.gallery_erase, name="gallery-erase"),
    path("people/<int:pk>/enrolment-code/", views.gallery_enrolment_code, name="gallery-enrolment-code"),
    path("recognize/", views.recognize_page, name="recognize"),
]
