"""REST API views: authorize, validate with an input serializer, call one service or selector,
answer with an output serializer.

Every queryset goes through list_visible_projects(user) in get_queryset(), so a restricted
project's rows are absent from lists and a 404 on detail for non-members (IDOR-safe). Ordering
is an allow-list (`ordering=id|-id`); filters are declared FilterSet fields.
"""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.response import Response

from annotations.api import filters, serializers
from annotations.api.errors import DomainErrorMixin, PreconditionFailed
from annotations.api.pagination import IdCursorPagination
from annotations.api.permissions import (
    IsAdmin,
    IsReviewer,
    ReviewerReadsAdminWrites,
    ReviewerReadsCuratorWrites,
)
from annotations.api.throttling import ThrottleFirstMixin
from annotations.exceptions import BlindReviewRequired
from annotations.models import Interaction, Label, LabelEvent, Prediction, Project, Rule, Run
from annotations.selectors.blind import (
    blind_interaction_ids,
    blind_interactions_subquery,
    is_blind_for,
)
from annotations.selectors.projects import list_visible_projects
from annotations.services import labels as label_service
from annotations.services import rules as rule_service
from annotations.services.jobs import lifecycle, starting


class IdOrdering(OrderingFilter):
    """Only `id` / `-id`; any other ordering key is ignored (never reaches order_by())."""

    ordering_fields = ["id"]


class _ScopedViewSet(ThrottleFirstMixin, DomainErrorMixin, viewsets.GenericViewSet):
    pagination_class = IdCursorPagination
    filter_backends = [DjangoFilterBackend, IdOrdering]
    ordering_fields = ["id"]
    ordering = ["id"]

    def visible_projects(self) -> QuerySet[Project]:
        return list_visible_projects(self.request.user)

    def get_visible_project(self, project_id: int) -> Project:
        return get_object_or_404(self.visible_projects(), pk=project_id)


def _etag(label: Label) -> str:
    return f'"{label.version}"'


def _parse_if_match(raw: str | None) -> int | str | None:
    """The version in an If-Match header ("3", W/"3" or 3); "invalid" when unreadable."""
    if raw is None:
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    return int(value) if value.isdigit() and len(value) < 10 else "invalid"


class ProjectViewSet(_ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Projects you can see (restricted ones only as a member or admin)."""

    serializer_class = serializers.ProjectOut
    permission_classes = [IsReviewer]
    filter_backends = [IdOrdering]

    def get_queryset(self):
        return self.visible_projects().order_by("id")

    @extend_schema(
        parameters=[serializers.QueueQueryIn],
        responses=serializers.QueueItemOut(many=True),
        summary="The next items of the review queue for you",
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def queue(self, request, pk=None):
        from annotations.selectors.queue import QueueFilters, list_next_queue_items

        project = self.get_object()
        query = serializers.QueueQueryIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        items = list_next_queue_items(
            project=project,
            user=request.user,
            filters=QueueFilters(
                predicted_class=data["predicted_class"],
                min_confidence=data["min_confidence"],
                max_confidence=data["max_confidence"],
                disagrees_with_rule=data["disagrees_with_rule"],
                consistency=data["consistency"],
                unreviewed_only=not data["consistency"],
            ),
            limit=data["limit"],
        )
        return Response(serializers.QueueItemOut(items, many=True).data)


class _BlindAwareMixin:
    """Hides what a blind reviewer must not see (selectors/blind.py): serializers get the ids
    of the interactions the caller holds blind (`blind_ids`) and leave their label out."""

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["blind_ids"] = blind_interaction_ids(self.request.user)
        return context


# Filters that select by the label: on a blind item, a row's presence would reveal its label.
_LABEL_FILTERS = ("label_source", "label_class", "has_label")


class InteractionViewSet(
    _BlindAwareMixin, _ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """Interactions with their current label; filter, search (`search=`), keyset pages.
    Items you hold blind come without their label (and out of label-filtered lists)."""

    serializer_class = serializers.InteractionOut
    permission_classes = [IsReviewer]
    filterset_class = filters.InteractionFilter

    def get_queryset(self):
        qs = Interaction.objects.filter(project__in=self.visible_projects()).select_related(
            "label", "label__author"
        )
        if any(self.request.query_params.get(name) for name in _LABEL_FILTERS):
            qs = qs.exclude(id__in=blind_interactions_subquery(self.request.user))
        return qs


class PredictionViewSet(_ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Model predictions (every version's, filter by model_version)."""

    serializer_class = serializers.PredictionOut
    permission_classes = [IsReviewer]
    filterset_class = filters.PredictionFilter

    def get_queryset(self):
        # Predictions of the items you hold blind are left out until you answer.
        return (
            Prediction.objects.filter(interaction__project__in=self.visible_projects())
            .exclude(interaction_id__in=blind_interactions_subquery(self.request.user))
            .select_related("model_version")
        )


# PUT and PATCH share one contract (optimistic locking via version or If-Match).
_LABEL_UPDATE_SCHEMA = extend_schema(
    request=serializers.LabelUpdateIn,
    parameters=[OpenApiParameter("If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER)],
    responses={
        200: serializers.LabelOut,
        409: OpenApiResponse(description="edit conflict (stale version)"),
        412: OpenApiResponse(description="If-Match does not match"),
        428: OpenApiResponse(description="neither version nor If-Match was sent"),
    },
)


class LabelViewSet(_ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Current labels. Writes go through services.labels with optimistic locking: send the
    version you loaded (body `version`/`expected_version`, or `If-Match: "<version>"`); a
    stale one answers 409 (body) or 412 (If-Match), and nothing is written."""

    serializer_class = serializers.LabelOut
    permission_classes = [IsReviewer]
    filterset_class = filters.LabelFilter

    def get_queryset(self):
        # The labels of the items you hold blind are left out until you answer.
        return (
            Label.objects.filter(interaction__project__in=self.visible_projects())
            .exclude(interaction_id__in=blind_interactions_subquery(self.request.user))
            .select_related("author")
        )

    def retrieve(self, request, *args, **kwargs):
        label = self.get_object()
        return Response(serializers.LabelOut(label).data, headers={"ETag": _etag(label)})

    @extend_schema(
        request=serializers.LabelCreateIn,
        responses={201: serializers.LabelOut, 409: OpenApiResponse(description="edit conflict")},
    )
    def create(self, request):
        data = self._valid(serializers.LabelCreateIn)
        interaction = get_object_or_404(
            Interaction.objects.filter(project__in=self.visible_projects()), pk=data["interaction"]
        )
        label = self._record(interaction, data, expected_version=data["expected_version"])
        return Response(
            serializers.LabelOut(label).data,
            status=status.HTTP_201_CREATED,
            headers={"ETag": _etag(label)},
        )

    @_LABEL_UPDATE_SCHEMA
    def update(self, request, pk=None):
        label = self.get_object()
        data = self._valid(serializers.LabelUpdateIn)
        if_match = _parse_if_match(request.headers.get("If-Match"))
        if if_match is not None and if_match != label.version:
            raise PreconditionFailed()
        expected = data["version"] if data["version"] is not None else if_match
        if expected is None:
            return Response(
                {"detail": "Send the version you loaded (field 'version' or an If-Match header)."},
                status=status.HTTP_428_PRECONDITION_REQUIRED,
            )
        label = self._record(label.interaction, data, expected_version=expected)
        return Response(serializers.LabelOut(label).data, headers={"ETag": _etag(label)})

    @_LABEL_UPDATE_SCHEMA
    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk)

    def _valid(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _record(
        self, interaction: Interaction, data: dict, *, expected_version: int | None
    ) -> Label:
        if is_blind_for(self.request.user, interaction):
            raise BlindReviewRequired(
                f"You hold a blind review of interaction {interaction.pk}: answer it with "
                "POST /api/review-tasks/<id>/answer/ (see GET /api/review-tasks/)."
            )
        unclear = data["status"] == Label.Status.UNCLEAR
        return label_service.record_review(
            interaction=interaction,
            user=self.request.user,
            label_class=data["label_class"] or None,
            status=data["status"],
            note=data["note"],
            expected_version=expected_version,
            action=LabelEvent.Action.FLAG if unclear else LabelEvent.Action.CHANGE,
        )


class RuleViewSet(
    _ScopedViewSet,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
):
    """Curator rules (pattern -> class). Reviewers read; curators create, change, delete."""

    serializer_class = serializers.RuleOut
    permission_classes = [ReviewerReadsCuratorWrites]
    filterset_class = filters.RuleFilter

    def get_queryset(self):
        return Rule.objects.filter(project__in=self.visible_projects()).annotate(
            n_matches=Count("matches")
        )

    @extend_schema(request=serializers.RuleIn, responses={201: serializers.RuleOut})
    def create(self, request):
        data = serializers.RuleIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        project = self.get_visible_project(values.pop("project"))
        rule = rule_service.create_rule(project=project, user=request.user, **values)
        return Response(serializers.RuleOut(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.RuleUpdateIn, responses=serializers.RuleOut)
    def partial_update(self, request, pk=None):
        rule = self.get_object()
        data = serializers.RuleUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        rule = rule_service.update_rule(rule=rule, user=request.user, **data.validated_data)
        return Response(serializers.RuleOut(rule).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        rule_service.delete_rule(rule=self.get_object(), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=serializers.RulePreviewIn, responses=serializers.RulePreviewOut)
    @action(detail=False, methods=["post"], pagination_class=None, filter_backends=[])
    def preview(self, request):
        """How many interactions a rule would match and how many the model labels differently."""
        data = serializers.RulePreviewIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        project = self.get_visible_project(values.pop("project"))
        preview = rule_service.preview_rule(project=project, **values)
        return Response(serializers.RulePreviewOut(preview).data)


class RunViewSet(_ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Training / pseudo-labeling / retrain runs: reviewers read status, admins start and cancel."""

    serializer_class = serializers.RunOut
    permission_classes = [ReviewerReadsAdminWrites]
    filterset_class = filters.RunFilter

    def get_queryset(self):
        return Run.objects.filter(project__in=self.visible_projects())

    @extend_schema(request=serializers.RunStartIn, responses={201: serializers.RunOut})
    def create(self, request):
        data = serializers.RunStartIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = self.get_visible_project(values["project"])
        run = starting.start_run(
            values["kind"],
            dict(values["params"]),
            project=project,
            user=request.user,
            idempotency_key=values["idempotency_key"],
        )
        return Response(serializers.RunOut(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None, responses={200: serializers.RunOut, 409: OpenApiResponse(description="ended")}
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAdmin])
    def cancel(self, request, pk=None):
        run = lifecycle.cancel_run(run=self.get_object(), user=request.user)
        return Response(serializers.RunOut(run).data)
