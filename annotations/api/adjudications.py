"""The curators' adjudication queue over the API.

GET /api/adjudications/ (open ones; `?state=decided` or `all`) lists items whose reviewers
disagree, with every answer side by side; the model's answer appears only once decided.
POST /api/adjudications/{id}/decide/ writes the decision as the final label (source
adjudication) under optimistic locking: send the label version you loaded (`version`, or
`If-Match: "<version>"`, the ETag of the detail); a stale one answers 409 (body) or 412
(If-Match), and nothing is written, so of two curators deciding at once one wins.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from annotations.api.errors import PreconditionFailed
from annotations.api.permissions import IsCurator
from annotations.api.views import _etag, _parse_if_match, _ScopedViewSet
from annotations.models import Adjudication
from annotations.selectors.team import get_adjudication_item
from annotations.services.adjudication import decide_adjudication


class AnswerOut(serializers.Serializer):
    who = serializers.CharField()
    kind = serializers.CharField()
    label_class = serializers.CharField()
    status = serializers.CharField()
    note = serializers.CharField()
    at = serializers.DateTimeField()


class AdjudicationOut(serializers.Serializer):
    id = serializers.IntegerField(source="adjudication.id")
    interaction = serializers.IntegerField(source="adjudication.interaction_id")
    description = serializers.CharField(source="adjudication.interaction.description")
    reason = serializers.CharField(source="adjudication.reason")
    created_at = serializers.DateTimeField(source="adjudication.created_at")
    decided_by = serializers.CharField(
        source="adjudication.decided_by.username", allow_null=True, default=None
    )
    decided_at = serializers.DateTimeField(source="adjudication.decided_at", allow_null=True)
    decision_class = serializers.CharField(source="adjudication.decision_class")
    label_version = serializers.IntegerField(source="label.version", allow_null=True, default=None)
    answers = AnswerOut(many=True)
    model_class = serializers.CharField(
        source="prediction.predicted_class", allow_null=True, default=None
    )


class DecideIn(serializers.Serializer):
    label_class = serializers.CharField(max_length=100)
    note = serializers.CharField(allow_blank=True, required=False, default="", max_length=5000)
    version = serializers.IntegerField(
        min_value=0, max_value=2**31 - 1, required=False, allow_null=True, default=None
    )


class AdjudicationViewSet(_ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Items whose reviewers disagree (Curator)."""

    permission_classes = [IsCurator]
    serializer_class = AdjudicationOut
    filter_backends = []

    def get_queryset(self):
        qs = Adjudication.objects.filter(interaction__project__in=self.visible_projects())
        # Detail lookups see decided ones too; the list defaults to the open ones.
        state = self.request.query_params.get("state", "open") if self.action == "list" else "all"
        if state == "open":
            qs = qs.filter(decided_at__isnull=True)
        elif state == "decided":
            qs = qs.filter(decided_at__isnull=False)
        return qs.select_related("interaction", "decided_by").order_by("id")

    @extend_schema(
        parameters=[
            OpenApiParameter("state", OpenApiTypes.STR, enum=["open", "decided", "all"]),
        ]
    )
    def list(self, request, *args, **kwargs):
        if request.query_params.get("state", "open") not in ("open", "decided", "all"):
            return Response({"detail": "state must be open, decided or all."}, status=400)
        page = self.paginate_queryset(self.get_queryset())
        items = [get_adjudication_item(adjudication=a) for a in page]
        return self.get_paginated_response(AdjudicationOut(items, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        item = get_adjudication_item(adjudication=self.get_object())
        headers = {"ETag": _etag(item.label)} if item.label is not None else {}
        return Response(AdjudicationOut(item).data, headers=headers)

    @extend_schema(
        request=DecideIn,
        parameters=[OpenApiParameter("If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        responses={
            200: AdjudicationOut,
            409: OpenApiResponse(description="decided or changed meanwhile"),
            412: OpenApiResponse(description="If-Match does not match"),
            428: OpenApiResponse(description="neither version nor If-Match was sent"),
        },
        summary="Decide an adjudication (the final label, source adjudication)",
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def decide(self, request, pk=None):
        adjudication = self.get_object()
        data = DecideIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        current = get_adjudication_item(adjudication=adjudication).label
        if_match = _parse_if_match(request.headers.get("If-Match"))
        current_version = current.version if current is not None else None
        if if_match is not None and if_match != current_version:
            raise PreconditionFailed()
        expected = values["version"] if values["version"] is not None else if_match
        if expected is None and current is not None:
            return Response(
                {"detail": "Send the label version you loaded ('version' or If-Match)."},
                status=428,
            )
        label = decide_adjudication(
            adjudication=adjudication,
            user=request.user,
            label_class=values["label_class"],
            expected_version=expected,
            note=values["note"],
        )
        adjudication.refresh_from_db()
        item = get_adjudication_item(adjudication=adjudication)
        return Response(AdjudicationOut(item).data, headers={"ETag": _etag(label)})
