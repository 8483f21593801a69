"""Web app URLs (server-rendered pages and HTMX fragments)."""

from django.urls import path

from annotations.views import dashboard, review, runs

app_name = "annotations"

urlpatterns = [
    # --- Review (Reviewer and up) -----------------------------------------------------------
    path("", review.home, name="home"),
    path("projects/<int:project_pk>/queue/", review.queue, name="queue"),
    path("projects/<int:project_pk>/review/", review.review_next, name="review_next"),
    path("projects/<int:project_pk>/review/undo/", review.review_undo, name="review_undo"),
    path("interactions/<int:pk>/", review.review_item, name="review_item"),
    path("interactions/<int:pk>/label/", review.review_action, name="review_action"),
    path("interactions/<int:pk>/skip/", review.review_skip, name="review_skip"),
    # --- Dashboard (Reviewer and up) --------------------------------------------------------
    path("projects/<int:project_pk>/dashboard/", dashboard.dashboard, name="dashboard"),
    path(
        "projects/<int:project_pk>/dashboard/runs/",
        dashboard.active_runs_partial,
        name="dashboard_runs",
    ),
    # --- Training runs from the browser (Admin) ---------------------------------------------
    path("projects/<int:project_pk>/runs/", runs.run_list, name="runs"),
    path("projects/<int:project_pk>/runs/start/", runs.run_start, name="run_start"),
    path("runs/<int:pk>/", runs.run_detail, name="run_detail"),
    path("runs/<int:pk>/progress/", runs.run_progress, name="run_progress"),
    path("runs/<int:pk>/cancel/", runs.run_cancel, name="run_cancel"),
]
