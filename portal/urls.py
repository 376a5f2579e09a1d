from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal import api, face_login, views, views_me

register_converter(api.IdConverter, "id")

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("favicon.ico", RedirectView.as_view(url=f"{settings.STATIC_URL}favicon.svg", permanent=True)),
    path("me/", views_me.me, name="me"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/face-login/", face_login.face_login, name="face-login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("manage/", include("portal.urls_manage")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("portal.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI from drf-spectacular-sidecar, its script a separate file: it runs under the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("recognition.urls")),
    path("", include("attendance.urls")),
]

# Under /api/ every error is JSON in the API's one shape; elsewhere Django's pages.
handler400 = "portal.api.bad_request"
handler403 = "portal.api.permission_denied"
handler404 = "portal.api.page_not_found"
handler500 = "portal.api.server_error"
