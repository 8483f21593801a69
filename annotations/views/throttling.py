"""The web pages' throttle: the HTML views are rate-limited per user like the API.

A middleware, so no page can ship without it: every view of `annotations.views` (pages and
htmx fragments) counts against one budget per signed-in user (per client address when
anonymous), DDI_WEB_THROTTLE_RATE requests (env THROTTLE_WEB, default 300/min). It reuses DRF's
SimpleRateThrottle (the API's sliding window and cache), so both count the same way. Over the
limit, the answer is a 429 page (or a short htmx fragment) with Retry-After.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.throttling import SimpleRateThrottle

from ddi_site.client_ip import client_ip

DEFAULT_WEB_RATE = "300/min"


class WebRateThrottle(SimpleRateThrottle):
    scope = "web"

    def get_rate(self) -> str:
        return getattr(settings, "DDI_WEB_THROTTLE_RATE", None) or DEFAULT_WEB_RATE

    def get_cache_key(self, request, view) -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ident = f"user-{user.pk}"
        else:
            ident = f"ip-{client_ip(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class WebThrottleMiddleware:
    """429 for a user past DDI_WEB_THROTTLE_RATE requests to the web app's views."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if not getattr(view_func, "__module__", "").startswith("annotations.views"):
            return None  # the API has its own throttles; admin, login and static are not pages
        throttle = WebRateThrottle()  # reads the rate now: a settings change takes effect
        if throttle.allow_request(request, None):
            return None
        wait = math.ceil(throttle.wait() or 1)
        message = (
            f"Too many requests: more than {throttle.rate} from your account. "
            f"Slow down and try again in {wait} seconds."
        )
        if getattr(request, "htmx", False):
            response = HttpResponse(f'<p class="msg msg-error" role="alert">{message}</p>')
            response.status_code = 429
        else:
            response = render(request, "429.html", {"message": message}, status=429)
        response["Retry-After"] = str(wait)
        return response
