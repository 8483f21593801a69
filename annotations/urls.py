"""Web app URLs (server-rendered pages and HTMX fragments)."""

from django.urls import path

from annotations.views import account, audit, dashboard, review, runs, schedule, team
from annotations.views import export as export_views
from annotations.views import imports as import_views
from annotations.views import rules as rule_views

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
    path("projects/<int:project_pk>/schedule/", schedule.schedule_page, name="schedule"),
    path("runs/<int:pk>/", runs.run_detail, name="run_detail"),
    path("runs/<int:pk>/progress/", runs.run_progress, name="run_progress"),
    path("runs/<int:pk>/cancel/", runs.run_cancel, name="run_cancel"),
    # --- Rules and export (Curator; owned by the API/export engineer) -----------------------
    path("projects/<int:project_pk>/rules/", rule_views.rule_list, name="rules"),
    path("projects/<int:project_pk>/rules/new/", rule_views.rule_create, name="rule_create"),
    path("rules/<int:pk>/edit/", rule_views.rule_edit, name="rule_edit"),
    path("projects/<int:project_pk>/export/", export_views.export_page, name="export"),
    path(
        "projects/<int:project_pk>/export/download/",
        export_views.export_download,
        name="export_download",
    ),
    path("projects/<int:project_pk>/export/card/", export_views.export_card, name="export_card"),
    path("projects/<int:project_pk>/audit/", audit.audit_page, name="audit"),
    # --- Account (every role): the user's own API tokens -----------------------------------
    path("account/tokens/", account.account_tokens, name="account_tokens"),
    path("account/tokens/revoke/", account.account_token_revoke, name="account_token_revoke"),
    # --- Team review (Curator) -------------------------------------------------------------
    path("projects/<int:project_pk>/team/", team.team_settings, name="team"),
    path("projects/<int:project_pk>/adjudication/", team.adjudication_list, name="adjudications"),
    path("adjudications/<int:pk>/", team.adjudication_detail, name="adjudication"),
    path("projects/<int:project_pk>/flags/", team.flag_inbox, name="flags"),
    path("interactions/<int:pk>/flag/label/", team.flag_label, name="flag_label"),
    path("interactions/<int:pk>/flag/return/", team.flag_return, name="flag_return"),
    path("projects/<int:project_pk>/guideline/", team.guideline_amend, name="guideline_amend"),
    path("projects/<int:project_pk>/consistency/", team.consistency, name="consistency"),
    # --- Import (Curator; the reliability engineer's upload page) ---------------------------
    path("projects/<int:project_pk>/imports/", import_views.import_page, name="imports"),
]
