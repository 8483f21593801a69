"""Token login for API clients, under the strict "login" throttle."""

from __future__ import annotations

from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny

from annotations.api.throttling import LoginRateThrottle


class ThrottledObtainAuthToken(ObtainAuthToken):
    """POST username + password -> {"token": ...}. 10 tries a minute per client by default."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [LoginRateThrottle]
