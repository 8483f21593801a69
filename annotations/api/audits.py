"""Audits over the API: the estimate of the unreviewed labels' accuracy (and auto-accept), start
an audit, set the auto-accept error rate. Audit items are answered through the queue, blind."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import audit_stats
from annotations.api.errors import DomainErrorMixin
from annotations.api.throttling import ThrottleFirstMixin
from annotations.models import Audit, Project
from annotations.roles import Role, has_role
from annotations.selectors import audit as audit_selectors
from annotations.selectors.projects import list_visible_projects
from annotations.services import audit as audit_service


class AuditStartIn(serializers.Serializer):
    source = serializers.ChoiceField(choices=Audit.Source.values, default=Audit.Source.MODEL)
    size = serializers.IntegerField(
        min_value=1, max_value=audit_service.MAX_AUDIT_SIZE, default=audit_stats.DEFAULT_AUDIT_SIZE
    )
    by_pattern = serializers.BooleanField(
        default=True,
        help_text="take sentence patterns whole (one answer stands for every row with the same "
        "blinded sentence); false: a plain random draw of rows",
    )


class AutoAcceptIn(serializers.Serializer):
    alpha = serializers.FloatField(allow_null=True, help_text="in (0, 0.5); null turns it off")


class _ReviewerReadsCuratorWrites(BasePermission):
    message = "Starting an audit or setting the error rate needs the Curator role."

    def has_permission(self, request, view) -> bool:
        needed = Role.REVIEWER if request.method in ("GET", "HEAD", "OPTIONS") else Role.CURATOR
        return has_role(request.user, needed)


def _state(project: Project) -> dict:
    out = {}
    for source in Audit.Source.values:
        summary = audit_selectors.get_audit_summary(project=project, source=source)
        out[source] = None if summary is None else summary.as_dict()
    accept = audit_selectors.get_auto_accept(project=project)
    return {"audit": out, "auto_accept": None if accept is None else accept.as_dict()}


class _ProjectAuditBase(ThrottleFirstMixin, DomainErrorMixin, APIView):
    permission_classes = [_ReviewerReadsCuratorWrites]

    def project(self, request, pk: int) -> Project:
        return get_object_or_404(list_visible_projects(request.user), pk=pk)


class ProjectAuditView(_ProjectAuditBase):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        summary="Estimated accuracy of the unreviewed labels (latest audit per source)",
    )
    def get(self, request, pk: int):
        return Response(_state(self.project(request, pk)))

    @extend_schema(
        request=AuditStartIn,
        responses={201: OpenApiTypes.OBJECT},
        summary="Draw a blind audit (Curator); its items go to the review queue",
    )
    def post(self, request, pk: int):
        project = self.project(request, pk)
        data = AuditStartIn(data=request.data)
        data.is_valid(raise_exception=True)
        audit = audit_service.start_audit(project=project, user=request.user, **data.validated_data)
        summary = audit_selectors.get_audit_summary(project=project, audit=audit)
        return Response(summary.as_dict(), status=status.HTTP_201_CREATED)


class ProjectAutoAcceptView(_ProjectAuditBase):
    @extend_schema(
        request=AutoAcceptIn,
        responses={200: OpenApiTypes.OBJECT},
        summary="Set the auto-accept target error rate (Curator)",
    )
    def put(self, request, pk: int):
        project = self.project(request, pk)
        data = AutoAcceptIn(data=request.data)
        data.is_valid(raise_exception=True)
        audit_service.set_auto_accept_alpha(project=project, alpha=data.validated_data["alpha"])
        return Response(_state(project)["auto_accept"] or {"alpha": None})
