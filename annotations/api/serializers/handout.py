"""Serializers of the queue hand-out and of blind review tasks."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotations.api.serializers.core import CLASS_NAME_FIELD, InteractionOut
from annotations.models import Label, ReviewTask


class QueueNextIn(serializers.Serializer):
    predicted_class = serializers.CharField(max_length=100, required=False, default="")
    min_confidence = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, allow_null=True, default=None
    )
    max_confidence = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, allow_null=True, default=None
    )


class BlindTaskRef(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()


class QueueNextOut(serializers.Serializer):
    interaction = InteractionOut(source="*")
    claim_expires_at = serializers.DateTimeField(source="claim.expires_at")
    blind = serializers.SerializerMethodField()
    blind_task = serializers.SerializerMethodField()

    def get_blind(self, obj) -> bool:
        return self.context.get("blind_task") is not None

    @extend_schema_field(BlindTaskRef(allow_null=True))
    def get_blind_task(self, obj) -> dict | None:
        task = self.context.get("blind_task")
        return {"id": task.pk, "kind": task.kind} if task is not None else None


class ReviewTaskOut(serializers.ModelSerializer):
    """A blind review row. While it is open the comparison fields are empty (the answer the
    holder must not see is only snapshotted when their answer comes in)."""

    answered_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    first_reviewer = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    # "" while unanswered (a plain string: the choice enum would not admit the blank).
    answer_status = serializers.CharField(
        read_only=True, help_text='"labeled", "unclear", or "" while open'
    )
    agrees_with_first = serializers.BooleanField(allow_null=True, read_only=True)
    agrees_with_model = serializers.BooleanField(allow_null=True, read_only=True)

    class Meta:
        model = ReviewTask
        fields = [
            "id",
            "interaction",
            "kind",
            "reason",
            "created_at",
            "answered_by",
            "answered_at",
            "answer_class",
            "answer_status",
            "note",
            "first_class",
            "first_status",
            "first_reviewer",
            "predicted_class",
            "agrees_with_first",
            "agrees_with_model",
            "guideline_revision",
        ]
        read_only_fields = fields


class BlindAnswerIn(serializers.Serializer):
    label_class = serializers.CharField(
        allow_blank=True, required=False, default="", **CLASS_NAME_FIELD
    )
    status = serializers.ChoiceField(choices=Label.Status.choices, default=Label.Status.LABELED)
    note = serializers.CharField(allow_blank=True, required=False, default="", max_length=5000)
