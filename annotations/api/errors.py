"""Domain exceptions -> HTTP answers, so API views never turn a user's mistake into a 500."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.exceptions import APIException

from annotations.exceptions import (
    AdjudicationClosed,
    BlindReviewRequired,
    DomainError,
    EditConflict,
    NoActiveModelVersion,
    NothingToTrain,
    NotYourBlindReview,
    RunNotCancellable,
)

_STATUS = {
    EditConflict: status.HTTP_409_CONFLICT,
    RunNotCancellable: status.HTTP_409_CONFLICT,
    NothingToTrain: status.HTTP_409_CONFLICT,
    NoActiveModelVersion: status.HTTP_409_CONFLICT,
    NotYourBlindReview: status.HTTP_409_CONFLICT,
    BlindReviewRequired: status.HTTP_409_CONFLICT,
    AdjudicationClosed: status.HTTP_409_CONFLICT,
}


class DomainProblem(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, exc: DomainError, status_code: int | None = None) -> None:
        super().__init__(detail=str(exc))
        if status_code is not None:
            self.status_code = status_code


class PreconditionFailed(APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The label changed since you loaded it (If-Match does not match its ETag)."
    default_code = "precondition_failed"


class DomainErrorMixin:
    """Turn a DomainError raised by a service into 400/409 with the service's message."""

    def handle_exception(self, exc):
        if isinstance(exc, DomainError):
            code = next((s for kind, s in _STATUS.items() if isinstance(exc, kind)), None)
            exc = DomainProblem(exc, code)
        return super().handle_exception(exc)


@csrf_exempt  # it changes nothing; without this a POST got Django's HTML CSRF page, not a 404
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """Any /api/ path no route matches (e.g. /api/projects/-1/export/): a JSON 404, not the web
    app's HTML page, so API clients always get the content type the schema documents."""
    return JsonResponse({"detail": "Not found."}, status=404)
