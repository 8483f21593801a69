"""Curator uploads: POST /api/projects/{id}/imports/ imports a file inside the request.

Files up to settings.DDI_MAX_UPLOAD_BYTES (checked by the input serializer) are imported
synchronously, all-or-nothing: 201 with the new ImportJob, 200 with the earlier job when the
same file (same sha256) was imported before (nothing added), or 400 with the row-level report
(`line 7001: expected 3 columns, got 5`) and nothing written. GET lists the project's imports.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from annotations.api import serializers
from annotations.api.errors import DomainErrorMixin
from annotations.api.permissions import IsCurator
from annotations.api.throttling import ThrottleFirstMixin
from annotations.exceptions import ImportFormatError
from annotations.selectors.projects import list_visible_projects
from annotations.services.uploads import import_uploaded_file

RECENT_IMPORTS = 50


def import_error_report(exc: ImportFormatError) -> dict:
    """The 400 body: a one-line summary plus one entry per problem (line, column, message)."""
    return {
        "detail": f"{exc.file_name}: import aborted, nothing was imported",
        "file_name": exc.file_name,
        "errors": [
            {
                "line": issue.line,
                "column": issue.column,
                "message": issue.message,
                "text": str(issue),
            }
            for issue in exc.issues
        ],
    }


class ProjectImportView(ThrottleFirstMixin, DomainErrorMixin, GenericAPIView):
    """Import a CSV/TSV/JSONL file into a project (Curator), or list its imports."""

    permission_classes = [IsCurator]
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = serializers.ImportJobOut
    pagination_class = None

    def _project(self, pk: int):
        return get_object_or_404(list_visible_projects(self.request.user), pk=pk)

    @extend_schema(responses=serializers.ImportJobOut(many=True), summary="Recent imports")
    def get(self, request, pk: int):
        project = self._project(pk)
        jobs = project.imports.order_by("-id")[:RECENT_IMPORTS]
        return Response(serializers.ImportJobOut(jobs, many=True).data)

    @extend_schema(
        request={"multipart/form-data": serializers.ImportUploadIn},
        responses={
            201: serializers.ImportJobOut,
            200: OpenApiResponse(serializers.ImportJobOut, description="already imported"),
            400: OpenApiResponse(description="file too large, or the row-level error report"),
        },
        summary="Upload and import a file (all-or-nothing, idempotent)",
    )
    def post(self, request, pk: int):
        project = self._project(pk)
        try:
            payload = request.data
        except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as exc:
            # Django's own answer is a bare HTML "Bad Request"; API clients get the reason.
            raise ParseError(f"request refused: {exc}") from None
        data = serializers.ImportUploadIn(data=payload)
        data.is_valid(raise_exception=True)
        try:
            outcome = import_uploaded_file(
                project=project,
                upload=data.validated_data["file"],
                label_column=data.validated_data["label_column"],
                label_source=data.validated_data["label_source"],
                user=request.user,
            )
        except ImportFormatError as exc:
            return Response(import_error_report(exc), status=status.HTTP_400_BAD_REQUEST)
        code = status.HTTP_200_OK if outcome.already_imported else status.HTTP_201_CREATED
        return Response(serializers.ImportJobOut(outcome.job).data, status=code)
