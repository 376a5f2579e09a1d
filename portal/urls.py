from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from portal import face_login, views, views_me

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("me/", views_me.me, name="me"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/face-login/", face_login.face_login, name="face-login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("portal.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("recognition.urls")),
    path("", include("attendance.urls")),
]
