from django.urls import include, path

from recognition import views, views_learning

urlpatterns = [
    path("faces/<id:pk>/<str:kind>/", views.face_file, name="face-file"),
    path("people/<id:pk>/faces/", views.gallery, name="gallery"),
    path("people/<id:pk>/faces/<id:face_pk>/delete/", views.gallery_delete, name="gallery-delete"),
    path("people/<id:pk>/faces/<id:face_pk>/primary/", views.gallery_primary, name="gallery-primary"),
    path("people/<id:pk>/erase/<id:request_pk>/", views.gallery_erase, name="gallery-erase"),
    path("people/<id:pk>/enrolment-code/", views.gallery_enrolment_code, name="gallery-enrolment-code"),
    path("recognize/", views.recognize_page, name="recognize"),
    path("gallery/map/", include("recognition.gallery_map_views")),
    path("learning/", views_learning.learning_page, name="learning"),
    path("learning/run/", views_learning.learning_run_now, name="learning-run"),
    path("learning/runs/<id:pk>/progress/", views_learning.learning_progress, name="learning-progress"),
    path("learning/rollback/", views_learning.learning_rollback_view, name="learning-rollback"),
]
