"""Django admin for every model (read-mostly for the large tables).

No side door: what has a service (runs, model versions and their promotion, predictions, rules)
is read-only here, so parameter validation, promotion and the rule guards cannot be skipped.
"""

from django.contrib import admin

from annotations import models
from annotations.services.rules import delete_rule


class ReadOnlyAdmin(admin.ModelAdmin):
    """View only: the rows are written by the services (Runs page, API, workers)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "label_classes", "is_restricted", "created_at"]
    filter_horizontal = ["members"]


@admin.register(models.ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["file_name", "project", "state", "rows_read", "interactions_created"]
    list_filter = ["state", "project"]
    readonly_fields = [f.name for f in models.ImportJob._meta.fields]


@admin.register(models.Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ["id", "drug_a", "drug_b", "project", "split"]
    list_filter = ["project", "split"]
    search_fields = ["drug_a", "drug_b"]
    show_full_result_count = False
    raw_id_fields = ["import_job"]


@admin.register(models.Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["interaction", "label_class", "status", "source", "author", "updated_at"]
    list_filter = ["source", "status"]
    raw_id_fields = ["interaction"]
    # Labels change only through the review services so history and locking stay correct.
    readonly_fields = [f.name for f in models.Label._meta.fields]


@admin.register(models.LabelEvent)
class LabelEventAdmin(admin.ModelAdmin):
    list_display = ["interaction", "action", "old_class", "new_class", "actor", "created_at"]
    list_filter = ["action", "source"]
    raw_id_fields = ["interaction", "model_version"]
    readonly_fields = [f.name for f in models.LabelEvent._meta.fields]


@admin.register(models.ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    """is_active changes only through promotion (services.training)."""

    list_display = ["project", "number", "backbone", "status", "is_active", "created_at"]
    list_filter = ["project", "status", "is_active"]


@admin.register(models.Prediction)
class PredictionAdmin(ReadOnlyAdmin):
    list_display = ["interaction", "model_version", "predicted_class", "confidence"]
    list_filter = ["model_version"]
    raw_id_fields = ["interaction"]
    show_full_result_count = False


@admin.register(models.Run)
class RunAdmin(ReadOnlyAdmin):
    """Runs start through services.runs (validate_params, the single-flight lock)."""

    list_display = ["id", "project", "kind", "state", "progress_done", "progress_total"]
    list_filter = ["kind", "state"]


@admin.register(models.RunChunk)
class RunChunkAdmin(ReadOnlyAdmin):
    list_display = ["run", "index", "state", "rows_written", "attempts"]
    list_filter = ["state"]


@admin.register(models.Rule)
class RuleAdmin(admin.ModelAdmin):
    """View and delete only: a rule is written on the Rules page or the API, through
    services.rules, which validate the pattern and recompute its stored matches."""

    list_display = ["name", "project", "kind", "label_class", "priority", "is_active"]
    list_filter = ["project", "is_active"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj) -> None:
        delete_rule(rule=obj, user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for rule in queryset:
            delete_rule(rule=rule, user=request.user)


@admin.register(models.RetrainPolicy)
class RetrainPolicyAdmin(admin.ModelAdmin):
    list_display = ["project", "enabled", "min_new_reviews", "last_triggered_at"]


admin.site.register(models.ReviewSkip)
admin.site.register(models.ReviewClaim)
