"""API tokens: stored hashed, expiring, rotated at each token login, revoked when their user's
password changes or the user logs out of the web app, and listed/revoked on the account page.

Storage is django-rest-knox's AuthToken: a SHA-512 digest of the key plus its first 15
characters (to find the row); the key itself exists only in the login response. Clients keep
sending ``Authorization: Token <key>``. Tokens issued before knox (DRF's plain-text Token
table) were moved over by migration 0007 as digests with an expiry; see README, Security.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.signals import pre_save
from django.dispatch import receiver
from django.utils import timezone
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework.exceptions import AuthenticationFailed


def token_ttl() -> timedelta:
    return timedelta(hours=getattr(settings, "DDI_API_TOKEN_TTL_HOURS", 24))


class ExpiringTokenAuthentication(TokenAuthentication):
    """knox's hashed-token authentication (expired tokens are deleted and refused with 401),
    with one message a client can act on."""

    def authenticate_credentials(self, token):
        try:
            return super().authenticate_credentials(token)
        except AuthenticationFailed:
            raise AuthenticationFailed(
                "Invalid, expired or revoked token; log in again at /api/auth/token/."
            ) from None


def issue_token(user) -> str:
    """A fresh token key for `user`, replacing any earlier one (rotation at each login).

    Returns the key; only its digest is stored. Two logins of one user at once rotate one
    after the other: the user's row is locked first (that was a 500 in the load test's burst).
    """
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        AuthToken.objects.filter(user=user).delete()
        _instance, key = AuthToken.objects.create(user=user, expiry=token_ttl())
        return key


def list_tokens(user) -> QuerySet[AuthToken]:
    """The user's unexpired tokens, newest first (prefix, created, expiry; never the key)."""
    return AuthToken.objects.filter(user=user, expiry__gt=timezone.now()).order_by("-created")


def revoke_token(user, *, token_key: str) -> bool:
    """Delete one of `user`'s own tokens by its shown prefix; False when none matched."""
    deleted, _ = AuthToken.objects.filter(user=user, token_key=token_key).delete()
    return deleted > 0


def revoke_tokens(user) -> int:
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted


@receiver(user_logged_out, dispatch_uid="ddi_revoke_tokens_on_logout")
def _revoke_on_logout(sender, request, user, **kwargs):
    if user is not None:
        revoke_tokens(user)


@receiver(pre_save, sender=get_user_model(), dispatch_uid="ddi_revoke_tokens_on_password")
def _revoke_on_password_change(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None:
        return
    old = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if old is not None and old != instance.password:
        revoke_tokens(instance)
