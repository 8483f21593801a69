"""POST /api/projects/{id}/queue/next/: hand the caller the next queue item and claim it.

The list endpoint (GET .../queue/) only shows candidates; this one takes the short review lease
(ReviewClaim) through services.labels, so thirty reviewers asking at once get thirty different
items. 200 with the interaction and the lease's expiry, or 204 when nothing is left for you.
Open blind reviews the caller may answer come first (`blind: true`, `blind_task`), without the
item's label; answer them at POST /api/review-tasks/<id>/answer/.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from annotations.api import serializers
from annotations.api.errors import DomainErrorMixin
from annotations.api.permissions import IsReviewer
from annotations.api.throttling import ThrottleFirstMixin
from annotations.selectors.projects import list_visible_projects
from annotations.selectors.queue import QueueFilters
from annotations.services import blind as blind_service


class QueueNextView(ThrottleFirstMixin, DomainErrorMixin, GenericAPIView):
    """Claim the most uncertain item nobody else holds (Reviewer)."""

    permission_classes = [IsReviewer]
    serializer_class = serializers.QueueNextOut
    pagination_class = None

    @extend_schema(
        request=serializers.QueueNextIn,
        responses={
            200: serializers.QueueNextOut,
            204: OpenApiResponse(description="the queue is empty for you"),
        },
        summary="Claim the next item of the review queue",
    )
    def post(self, request, pk: int):
        project = get_object_or_404(list_visible_projects(request.user), pk=pk)
        query = serializers.QueueNextIn(data=request.data)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        claimed, task = blind_service.claim_next_item(
            project=project,
            user=request.user,
            filters=QueueFilters(
                predicted_class=data["predicted_class"],
                min_confidence=data["min_confidence"],
                max_confidence=data["max_confidence"],
            ),
        )
        if claimed is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        # Blind: the item comes without its label (and the queue never lists its prediction).
        context = {"blind_task": task, "blind_ids": {claimed.pk} if task is not None else set()}
        return Response(serializers.QueueNextOut(claimed, context=context).data)
