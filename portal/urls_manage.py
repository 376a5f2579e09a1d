from django.urls import path

from portal import views_manage as views

urlpatterns = [
    path("", views.index, name="manage-index"),
    path("people/", views.people, name="manage-people"),
    path("people/new/", views.person_new, name="manage-person-new"),
    path("people/<id:pk>/", views.person_edit, name="manage-person"),
    path("people/<id:pk>/active/", views.person_active, name="manage-person-active"),
    path("departments/", views.departments, name="manage-departments"),
    path("departments/<id:pk>/", views.department_edit, name="manage-department"),
    path("shifts/", views.shifts, name="manage-shifts"),
    path("shifts/new/", views.shift_edit, name="manage-shift-new"),
    path("shifts/<id:pk>/", views.shift_edit, name="manage-shift"),
    path("assignments/", views.assignments, name="manage-assignments"),
    path("holidays/", views.holiday_lists, name="manage-holiday-lists"),
    path("holidays/<id:pk>/", views.holiday_list_edit, name="manage-holiday-list"),
    path("devices/", views.devices, name="manage-devices"),
]
