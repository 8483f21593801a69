"""The client address for login throttling (django-axes) and DRF throttles.

X-Forwarded-For is trusted only as far as NUM_PROXIES says: with 0 (the default) the address is
REMOTE_ADDR, so a client cannot pick its own address by sending the header; with N reverse
proxies in front, it is the N-th address from the right of the header (the one the outermost
trusted proxy saw).
"""

from __future__ import annotations

from django.conf import settings


def client_ip(request) -> str | None:
    remote = request.META.get("REMOTE_ADDR")
    proxies = getattr(settings, "NUM_PROXIES", 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return remote
