from django.urls import path

from attendance import views

urlpatterns = [
    path("kiosk/", views.kiosk, name="kiosk"),
    path("monitor/", views.monitor, name="monitor"),
    path("monitor/thumbnails/<id:pk>.jpg", views.monitor_thumbnail, name="monitor-thumbnail"),
    path("reports/today/", views.today, name="report-today"),
    path("reports/month/", views.month, name="report-month"),
    path("reports/export.<str:fmt>", views.export, name="report-export"),
    path("people/<id:pk>/attendance/", views.employee_history, name="employee-history"),
    path("records/<id:record_pk>/correct/", views.correct, name="record-correct"),
]
