"""REST API URLs (mounted at /api/). Schema at /api/schema/, Swagger UI at /api/docs/."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny
from rest_framework.routers import SimpleRouter

from annotations.api import views
from annotations.api.adjudications import AdjudicationViewSet
from annotations.api.audits import ProjectAuditView, ProjectAutoAcceptView
from annotations.api.auth import ThrottledObtainAuthToken
from annotations.api.errors import api_not_found
from annotations.api.exports import ProjectExportCardView, ProjectExportView
from annotations.api.imports import ProjectImportView
from annotations.api.queue import QueueNextView
from annotations.api.review_tasks import ReviewTaskViewSet
from annotations.api.schema import ERROR_RESPONSES_HOOK

router = SimpleRouter()
router.register("projects", views.ProjectViewSet, basename="api-project")
router.register("interactions", views.InteractionViewSet, basename="api-interaction")
router.register("labels", views.LabelViewSet, basename="api-label")
router.register("predictions", views.PredictionViewSet, basename="api-prediction")
router.register("rules", views.RuleViewSet, basename="api-rule")
router.register("runs", views.RunViewSet, basename="api-run")
router.register("review-tasks", ReviewTaskViewSet, basename="api-review-task")
router.register("adjudications", AdjudicationViewSet, basename="api-adjudication")

urlpatterns = [
    path("auth/token/", ThrottledObtainAuthToken.as_view(), name="api-token"),
    path("projects/<int:pk>/export/", ProjectExportView.as_view(), name="api-project-export"),
    path(
        "projects/<int:pk>/export/card/",
        ProjectExportCardView.as_view(),
        name="api-project-export-card",
    ),
    path("projects/<int:pk>/imports/", ProjectImportView.as_view(), name="api-project-imports"),
    path("projects/<int:pk>/audit/", ProjectAuditView.as_view(), name="api-project-audit"),
    path(
        "projects/<int:pk>/audit/auto-accept/",
        ProjectAutoAcceptView.as_view(),
        name="api-project-auto-accept",
    ),
    path("projects/<int:pk>/queue/next/", QueueNextView.as_view(), name="api-project-queue-next"),
    # The API's shape is not a secret: schema and docs are readable without logging in.
    path(
        "schema/",
        SpectacularAPIView.as_view(
            permission_classes=[AllowAny],
            authentication_classes=[],
            custom_settings={"POSTPROCESSING_HOOKS": [ERROR_RESPONSES_HOOK]},
        ),
        name="api-schema",
    ),
    path(
        "docs/",
        # The split view serves its start-up script as a file (?script): the CSP forbids inline.
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
    *router.urls,
    re_path(r"^.*$", api_not_found),  # unmatched /api/ paths: JSON 404, not the HTML page
]
