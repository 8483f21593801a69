"""A strict throttle for credential endpoints (token login), scope "login".

The rate comes from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login"] when set, else 10/min.
"""

from __future__ import annotations

from rest_framework.throttling import AnonRateThrottle

DEFAULT_LOGIN_RATE = "10/min"


class LoginRateThrottle(AnonRateThrottle):
    """Per client IP, whether or not the request is authenticated."""

    scope = "login"

    def get_rate(self) -> str:
        return self.THROTTLE_RATES.get(self.scope) or DEFAULT_LOGIN_RATE

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ThrottleFirstMixin:
    """Check throttles before permissions (DRF does the reverse), so anonymous clients probing
    protected endpoints are rate-limited too instead of getting unlimited cheap 401s."""

    def initial(self, request, *args, **kwargs):
        self.format_kwarg = self.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(
            request
        )
        request.version, request.versioning_scheme = self.determine_version(
            request, *args, **kwargs
        )
        self.perform_authentication(request)
        self.check_throttles(request)
        self.check_permissions(request)
