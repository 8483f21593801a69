"""The account page: a user's own API tokens (prefix, created, expires) and a revoke button."""

from __future__ import annotations

import re

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotations.roles import Role
from annotations.tokens import list_tokens, revoke_token
from annotations.views.access import role_required
from annotations.views.common import page_context

_TOKEN_PREFIX = re.compile(r"[0-9a-f]{1,64}")


@require_GET
@role_required(Role.REVIEWER)
def account_tokens(request: HttpRequest) -> HttpResponse:
    """GET: the user's unexpired API tokens; the keys themselves are never stored or shown."""
    context = page_context(request, None, "account", tokens=list_tokens(request.user))
    return render(request, "annotations/account/tokens.html", context)


@require_POST
@role_required(Role.REVIEWER)
def account_token_revoke(request: HttpRequest) -> HttpResponse:
    """POST token_key: revoke one of the user's own tokens (another user's prefix matches none)."""
    token_key = request.POST.get("token_key", "")
    # Shown prefixes are hex; anything else (a NUL byte was a 500 on PostgreSQL) matches none.
    if not _TOKEN_PREFIX.fullmatch(token_key) or not revoke_token(
        request.user, token_key=token_key
    ):
        messages.error(request, "No such token of yours; it may have expired or been revoked.")
    else:
        messages.success(request, f"Token {token_key}… revoked; clients using it get 401 now.")
    return redirect("annotations:account_tokens")
