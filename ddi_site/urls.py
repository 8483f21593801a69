"""Top-level URLs: login/logout, the web app, the REST API, the admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Only the auth views the app uses: no password change/reset pages (the app sends no
    # e-mail; an admin sets passwords in /admin/ or with `manage.py changepassword`).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("annotations.api.urls")),
    path("", include("annotations.urls")),
]
