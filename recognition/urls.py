from django.urls import include, path

from recognition import views

urlpatterns = [
    path("faces/<id:pk>/<str:kind>/", views.face_file, name="face-file"),
    path("people/<id:pk>/faces/", views.gallery, name="gallery"),
    path("people/<id:pk>/faces/<id:face_pk>/delete/", views.gallery_delete, name="gallery-delete"),
    path("people/<id:pk>/faces/<id:face_pk>/primary/", views.gallery_primary, name="gallery-primary"),
    path("people/<id:pk>/erase/<id:request_pk>/", views.gallery_erase, name="gallery-erase"),
    path("people/<id:pk>/enrolment-code/", views.gallery_enrolment_code, name="gallery-enrolment-code"),
    path("recognize/", views.recognize_page, name="recognize"),
    path("gallery/map/", include("recognition.gallery_map_views")),
]
