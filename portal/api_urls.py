from django.urls import path

from attendance import api as attendance_api
from portal import api_views
from recognition import api as recognition_api

urlpatterns = [
    path("employees", api_views.EmployeeListApi.as_view(), name="api-employees"),
    path("employees/<id:pk>", api_views.EmployeeDetailApi.as_view(), name="api-employee"),
    path("departments", api_views.DepartmentListApi.as_view(), name="api-departments"),
    path("devices", api_views.DeviceListApi.as_view(), name="api-devices"),
    path("devices/<id:pk>", api_views.DeviceDetailApi.as_view(), name="api-device"),
    path("devices/<id:pk>/rotate-token", api_views.DeviceRotateTokenApi.as_view(), name="api-device-rotate-token"),
    path("device/heartbeat", api_views.DeviceMeApi.as_view(), name="api-device-heartbeat"),
    path("device/enrol", recognition_api.DeviceEnrolApi.as_view(), name="api-device-enrol"),
    path("employees/<id:pk>/enrolment-code", recognition_api.EnrolmentCodeApi.as_view(), name="api-enrolment-code"),
    path("faces", recognition_api.FaceListApi.as_view(), name="api-faces"),
    path("faces/<id:pk>", recognition_api.FaceDetailApi.as_view(), name="api-face"),
    path("recognize", recognition_api.RecognizeApi.as_view(), name="api-recognize"),
    path("verify", recognition_api.VerifyApi.as_view(), name="api-verify"),
    path("detect", recognition_api.DetectApi.as_view(), name="api-detect"),
    path("liveness/challenge", recognition_api.LivenessChallengeApi.as_view(), name="api-liveness-challenge"),
    path("check-ins", attendance_api.CheckInApi.as_view(), name="api-check-ins"),
    path("attendance/records", attendance_api.RecordListApi.as_view(), name="api-attendance-records"),
    path("attendance/month", attendance_api.MonthSheetApi.as_view(), name="api-attendance-month"),
]
