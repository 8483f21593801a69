"""Role checks for web views: anonymous -> login page, logged in without the role -> 403 page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from annotations.roles import Role, has_role


def role_required(role: Role) -> Callable:
    """Decorator: the view runs only for users holding `role` (or a higher one)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, role):
                raise PermissionDenied(f"This page needs the {role.value} role.")
            return view(request, *args, **kwargs)

        wrapped.required_role = role  # read by the permission-matrix test
        return wrapped

    return decorator
