"""Blind review rows over the API: your open and answered ones, and the answer endpoint.

GET /api/review-tasks/ lists the rows you hold or answered (curators and admins: every row of
the projects they see). POST /api/review-tasks/{id}/answer/ records your blind answer through
services/blind.py: 200 with the row (now carrying the comparison), 409 when it is not yours or
already answered, 400 for a class outside the project.
"""

from __future__ import annotations

from django.db.models import Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.response import Response

from annotations.api import serializers
from annotations.api.permissions import IsReviewer
from annotations.api.views import _ScopedViewSet
from annotations.models import ReviewTask
from annotations.roles import Role, has_role
from annotations.services import blind as blind_service


class ReviewTaskViewSet(_ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Blind reviews (second opinions, audit items)."""

    serializer_class = serializers.ReviewTaskOut
    permission_classes = [IsReviewer]
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return ReviewTask.objects.none()
        qs = ReviewTask.objects.filter(interaction__project__in=self.visible_projects())
        user = self.request.user
        if not has_role(user, Role.CURATOR):
            qs = qs.filter(Q(assignee=user) | Q(answered_by=user))
        return qs.select_related("answered_by", "first_reviewer").order_by("id")

    @extend_schema(
        request=serializers.BlindAnswerIn,
        responses={
            200: serializers.ReviewTaskOut,
            409: OpenApiResponse(description="not yours, or answered already"),
        },
        summary="Answer a blind review you hold",
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def answer(self, request, pk=None):
        task = self.get_object()
        data = serializers.BlindAnswerIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        answered = blind_service.answer_blind_task(
            task=task,
            user=request.user,
            label_class=values["label_class"] or None,
            status=values["status"],
            note=values["note"],
        )
        return Response(serializers.ReviewTaskOut(answered).data)
