from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from nexus import health, metrics
from workspaces import documentation
from workspaces.views import LoginView

urlpatterns = [
    path("health", health.health, name="health"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics.serve, name="prometheus-django-metrics"),
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("workspaces.api.urls")),
    path("", include("workspaces.api.kernel_urls")),
    path("workspaces/", include("workspaces.urls")),
    path("docs/<slug:name>/", documentation.doc_page, name="doc-page"),
    path("", RedirectView.as_view(url="/workspaces/", permanent=False)),
]

# Unknown URLs and crashes under /api/ and the kernel routes answer with the JSON error body.
handler404 = "workspaces.api.views.not_found"
handler500 = "workspaces.api.views.server_error"
