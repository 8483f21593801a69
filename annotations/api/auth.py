"""Token login for API clients, under the strict "login" throttle."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from annotations.api.throttling import LoginRateThrottle
from annotations.tokens import issue_token


# Wrong credentials (400) and the throttle (429) are answers every client meets: documented so
# schema-driven clients and the schemathesis suite (status_code_conformance) expect them.
@extend_schema_view(
    post=extend_schema(
        responses={
            200: AuthTokenSerializer,
            400: OpenApiResponse(description="wrong or missing username/password"),
            429: OpenApiResponse(description="too many login attempts from this client"),
        }
    )
)
class ThrottledObtainAuthToken(ObtainAuthToken):
    """POST username + password -> {"token": ...}. 10 tries a minute per client by default,
    and locked out (429) after LOGIN_FAILURE_LIMIT failures per username or address (axes)."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [LoginRateThrottle]

    def get_serializer_context(self):
        # authenticate() gets Django's HttpRequest, not DRF's wrapper: django-axes marks a
        # lockout on the request it is given, and its middleware (which turns the lockout into
        # a 429) only sees the HttpRequest.
        return {**super().get_serializer_context(), "request": self.request._request}

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # A new token at every login: the earlier one (maybe leaked) stops working.
        token = issue_token(serializer.validated_data["user"])
        return Response({"token": token.key})
