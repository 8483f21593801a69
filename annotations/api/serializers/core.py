"""The serializers of the core API: projects, labels, interactions, predictions, rules, runs,
and the queue and export queries."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotations.final_label_order import SOURCES
from annotations.models import (
    Interaction,
    Label,
    Prediction,
    Project,
    Rule,
    Run,
)
from annotations.roles import Role, has_role
from annotations.selectors.consistency import KINDS as CONSISTENCY_KINDS
from annotations.services.export import FORMATS
from annotations.services.jobs.params import RUN_PARAMS, RunParam, get_train_defaults

# --- outputs -------------------------------------------------------------------------------------


class ProjectOut(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "label_classes", "guideline", "is_restricted"]
        read_only_fields = fields


class LabelOut(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Label
        fields = [
            "id",
            "interaction",
            "label_class",
            "status",
            "source",
            "author",
            "note",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class InteractionOut(serializers.ModelSerializer):
    label = serializers.SerializerMethodField()

    class Meta:
        model = Interaction
        fields = [
            "id",
            "project",
            "drug_a",
            "drug_b",
            "description",
            "blinded_text",
            "pattern_hash",
            "split",
            "external_id_a",
            "external_id_b",
            "label",
        ]
        read_only_fields = fields

    @extend_schema_field(LabelOut(allow_null=True))
    def get_label(self, obj: Interaction) -> dict | None:
        # Blind: the caller holds an unanswered blind review of it (selectors/blind.py).
        if obj.pk in self.context.get("blind_ids", ()):
            return None
        label = getattr(obj, "label", None)
        return LabelOut(label).data if label is not None else None


class PredictionOut(serializers.ModelSerializer):
    model_version_number = serializers.IntegerField(source="model_version.number", read_only=True)

    class Meta:
        model = Prediction
        fields = [
            "id",
            "interaction",
            "model_version",
            "model_version_number",
            "predicted_class",
            "confidence",
            "margin",
            "probabilities",
        ]
        read_only_fields = fields


class RuleOut(serializers.ModelSerializer):
    class Meta:
        model = Rule
        fields = [
            "id",
            "project",
            "name",
            "kind",
            "field",
            "pattern",
            "label_class",
            "priority",
            "is_active",
            "is_too_costly",
            "match_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    match_count = serializers.SerializerMethodField(
        help_text="interactions the rule's stored matches cover (0 when it is too costly)"
    )

    def get_match_count(self, rule: Rule) -> int:
        annotated = getattr(rule, "n_matches", None)
        return annotated if annotated is not None else rule.matches.count()


class RunOut(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = [
            "id",
            "project",
            "kind",
            "state",
            "model_version",
            "params",
            "result",
            "progress_done",
            "progress_total",
            "percent",
            "stage",
            "error",
            "cancel_requested",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    percent = serializers.IntegerField(read_only=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        # A backbone that failed to load names folders of the server: admins only.
        if data.get("error", "").startswith("backbone ") and not has_role(
            getattr(request, "user", None), Role.ADMIN
        ):
            data["error"] = "unknown backbone"
        return data


class QueueItemOut(serializers.Serializer):
    interaction = InteractionOut()
    predicted_class = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True)
    margin = serializers.FloatField(allow_null=True)
    probabilities = serializers.ListField(child=serializers.FloatField())


class PreviewMatchOut(serializers.Serializer):
    interaction_id = serializers.IntegerField()
    drug_a = serializers.CharField()
    drug_b = serializers.CharField()
    text = serializers.CharField(help_text="the text the rule reads (blinded or raw)")
    predicted_class = serializers.CharField(
        allow_null=True, help_text="the active model version's class (null: no prediction)"
    )


class RulePreviewOut(serializers.Serializer):
    matches = serializers.IntegerField()
    disagreements = serializers.IntegerField()
    model_version = serializers.IntegerField(allow_null=True)
    examples = serializers.ListField(child=serializers.CharField())
    rows = PreviewMatchOut(many=True, help_text="this page of the matches")
    page = serializers.IntegerField()
    pages = serializers.IntegerField()


# --- inputs --------------------------------------------------------------------------------------

CLASS_NAME_FIELD = {"max_length": 100}


class LabelCreateIn(serializers.Serializer):
    interaction = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    label_class = serializers.CharField(
        allow_blank=True, required=False, default="", **CLASS_NAME_FIELD
    )
    status = serializers.ChoiceField(choices=Label.Status.choices, default=Label.Status.LABELED)
    note = serializers.CharField(allow_blank=True, required=False, default="", max_length=5000)
    expected_version = serializers.IntegerField(
        min_value=0,
        max_value=2**31 - 1,
        required=False,
        allow_null=True,
        default=None,
        help_text="the version you saw; omit (or null) when the interaction had no label",
    )


class LabelUpdateIn(serializers.Serializer):
    label_class = serializers.CharField(
        allow_blank=True, required=False, default="", **CLASS_NAME_FIELD
    )
    status = serializers.ChoiceField(choices=Label.Status.choices, default=Label.Status.LABELED)
    note = serializers.CharField(allow_blank=True, required=False, default="", max_length=5000)
    version = serializers.IntegerField(
        min_value=0,
        max_value=2**31 - 1,
        required=False,
        allow_null=True,
        default=None,
        help_text='the version you loaded (or send If-Match: "<version>"); a mismatch is 409',
    )


class RuleIn(serializers.Serializer):
    project = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    name = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
    kind = serializers.ChoiceField(choices=Rule.Kind.choices, default=Rule.Kind.REGEX)
    field = serializers.ChoiceField(choices=Rule.Field.choices, default=Rule.Field.BLINDED)
    pattern = serializers.CharField(max_length=1000, trim_whitespace=False)
    label_class = serializers.CharField(**CLASS_NAME_FIELD)
    priority = serializers.IntegerField(min_value=-1_000_000, max_value=1_000_000, default=0)
    is_active = serializers.BooleanField(default=True)


class RuleUpdateIn(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    kind = serializers.ChoiceField(choices=Rule.Kind.choices, required=False)
    field = serializers.ChoiceField(choices=Rule.Field.choices, required=False)
    pattern = serializers.CharField(max_length=1000, trim_whitespace=False, required=False)
    label_class = serializers.CharField(required=False, **CLASS_NAME_FIELD)
    priority = serializers.IntegerField(min_value=-1_000_000, max_value=1_000_000, required=False)
    is_active = serializers.BooleanField(required=False)


class RulePreviewIn(serializers.Serializer):
    project = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    kind = serializers.ChoiceField(choices=Rule.Kind.choices, default=Rule.Kind.REGEX)
    field = serializers.ChoiceField(choices=Rule.Field.choices, default=Rule.Field.BLINDED)
    pattern = serializers.CharField(max_length=1000, trim_whitespace=False)
    label_class = serializers.CharField(**CLASS_NAME_FIELD)
    page = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)


_TRAIN_DEFAULTS = get_train_defaults()


def _run_param_field(param: RunParam) -> serializers.Field:
    """The API field of a run parameter (services/jobs/params.py RUN_PARAMS); never required."""
    extra = {}
    if param.tunable:
        extra["help_text"] = f"Omit for the default, {_TRAIN_DEFAULTS[param.name]:g} (TrainConfig)."
    if param.kind is bool:
        return serializers.BooleanField(required=False, **extra)
    if param.kind is str:
        return serializers.CharField(max_length=param.max_chars, required=False, **extra)
    if param.nullable:
        extra["allow_null"] = True
    low, high = param.bounds or (None, None)
    if param.kind is int:
        return serializers.IntegerField(min_value=low, max_value=high, required=False, **extra)
    return serializers.FloatField(
        min_value=float(low), max_value=float(high), required=False, **extra
    )


# The run parameters the API takes, in RUN_PARAMS order.
RunParamsIn = type(
    "RunParamsIn",
    (serializers.Serializer,),
    {
        "__module__": __name__,
        **{param.name: _run_param_field(param) for param in RUN_PARAMS if param.in_api},
    },
)


class RunStartIn(serializers.Serializer):
    project = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    kind = serializers.ChoiceField(choices=Run.Kind.choices)
    params = RunParamsIn(required=False, default=dict)
    idempotency_key = serializers.CharField(
        max_length=200, required=False, allow_null=True, default=None
    )


class QueueQueryIn(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)
    predicted_class = serializers.CharField(max_length=100, required=False, default="")
    min_confidence = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, allow_null=True, default=None
    )
    max_confidence = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, allow_null=True, default=None
    )
    disagrees_with_rule = serializers.BooleanField(default=False)
    consistency = serializers.ChoiceField(
        choices=sorted(CONSISTENCY_KINDS),
        required=False,
        default="",
        allow_blank=True,
        help_text="only the items one consistency check lists (labeled ones included)",
    )


class ExportQueryIn(serializers.Serializer):
    file_format = serializers.ChoiceField(choices=FORMATS, default="csv")
    min_confidence = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, allow_null=True, default=None
    )
    sources = serializers.ListField(
        child=serializers.ChoiceField(choices=SOURCES), required=False, default=list
    )
    reviewed_only = serializers.BooleanField(default=False)
    classes = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list
    )
    auto_accepted = serializers.BooleanField(
        default=False,
        help_text="only model labels auto-accepted at the project's target error rate",
    )
