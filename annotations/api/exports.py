"""Export downloads over the API: streamed file (CSV/JSONL/Parquet) and the dataset card."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.api.errors import DomainErrorMixin
from annotations.api.permissions import IsCurator
from annotations.api.serializers import ExportQueryIn
from annotations.api.throttling import ThrottleFirstMixin
from annotations.models import Project
from annotations.selectors.projects import list_visible_projects
from annotations.services.export import (
    CONTENT_TYPES,
    build_export_card,
    filters_from_query,
    stream_export,
)


class AnyAcceptNegotiation(DefaultContentNegotiation):
    """The file's type is chosen by `file_format`, not Accept; errors still render as JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def streaming_export_response(*, project: Project, query: dict) -> StreamingHttpResponse:
    """A StreamingHttpResponse with the export, as an attachment (shared by API and web page)."""
    filters = filters_from_query(project=project, query=query)
    fmt = query["file_format"]
    response = StreamingHttpResponse(
        stream_export(project=project, export_format=fmt, filters=filters),
        content_type=CONTENT_TYPES[fmt],
    )
    name = slugify(project.name) or f"project-{project.pk}"
    response["Content-Disposition"] = f'attachment; filename="ddi-{name}.{fmt}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


class _ExportBase(ThrottleFirstMixin, DomainErrorMixin, APIView):
    permission_classes = [IsCurator]
    content_negotiation_class = AnyAcceptNegotiation

    def _project_and_query(self, request, pk: int) -> tuple[Project, dict]:
        project = get_object_or_404(list_visible_projects(request.user), pk=pk)
        query = ExportQueryIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        return project, query.validated_data


class ProjectExportView(_ExportBase):
    @extend_schema(
        parameters=[ExportQueryIn],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/x-ndjson"): OpenApiTypes.BINARY,
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
            400: OpenApiResponse(description="invalid filter"),
        },
        summary="Download the project's final labels (streamed attachment)",
    )
    def get(self, request, pk: int):
        project, query = self._project_and_query(request, pk)
        return streaming_export_response(project=project, query=query)


class ProjectExportCardView(_ExportBase):
    @extend_schema(
        parameters=[ExportQueryIn],
        responses={200: OpenApiTypes.OBJECT},
        summary="The dataset card (counts, class balance, sources, model, filters) for an export",
    )
    def get(self, request, pk: int):
        project, query = self._project_and_query(request, pk)
        filters = filters_from_query(project=project, query=query)
        return Response(
            build_export_card(project=project, filters=filters, export_format=query["file_format"])
        )
