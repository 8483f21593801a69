"""Token login for API clients, under the strict "login" throttle."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import parsers, renderers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

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
class ThrottledObtainAuthToken(APIView):
    """POST username + password -> {"token": ...}. 10 tries a minute per client by default,
    and locked out (429) after LOGIN_FAILURE_LIMIT failures per username or address (axes)."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [LoginRateThrottle]
    # DRF's ObtainAuthToken accepts these (form, multipart, JSON); kept for existing clients.
    parser_classes = (parsers.FormParser, parsers.MultiPartParser, parsers.JSONParser)
    renderer_classes = (renderers.JSONRenderer,)
    serializer_class = AuthTokenSerializer

    def get_serializer(self, *args, **kwargs):
        # The schema generator passes a context of its own (and has no request).
        kwargs.setdefault("context", self.get_serializer_context())
        return self.serializer_class(*args, **kwargs)

    def get_serializer_context(self):
        # authenticate() gets Django's HttpRequest, not DRF's wrapper: django-axes marks a
        # lockout on the request it is given, and its middleware (which turns the lockout into
        # a 429) only sees the HttpRequest.
        return {"request": self.request._request, "format": self.format_kwarg, "view": self}

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # A new token at every login: the earlier one (maybe leaked) stops working. Only its
        # digest is stored, so this response is the one place the key exists.
        key = issue_token(serializer.validated_data["user"])
        return Response({"token": key})
