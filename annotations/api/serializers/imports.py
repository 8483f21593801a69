"""Serializers of curator uploads: the import job out, the upload in."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from annotations.models import ImportJob


class ImportJobOut(serializers.ModelSerializer):
    class Meta:
        model = ImportJob
        fields = [
            "id",
            "project",
            "file_name",
            "sha256",
            "file_format",
            "state",
            "rows_read",
            "interactions_created",
            "labels_created",
            "errors",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class ImportUploadIn(serializers.Serializer):
    file = serializers.FileField(max_length=255)
    label_column = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="the header of a column holding labels (blank: import unlabeled)",
    )
    label_source = serializers.ChoiceField(
        choices=["import", "seed"],
        default="import",
        help_text="how the file's labels are recorded (export column label_source)",
    )

    def validate_file(self, value):
        # Rule 7 of RELIABILITY.md: FILE_UPLOAD_MAX_MEMORY_SIZE only decides memory vs disk;
        # this is the size cap.
        limit = settings.DDI_MAX_UPLOAD_BYTES
        if value.size > limit:
            raise serializers.ValidationError(
                f"file too large: {value.size:,} bytes; the limit is {limit:,} bytes"
                f" ({limit / 1024 / 1024:.0f} MB). Split the file and upload the parts."
            )
        return value
