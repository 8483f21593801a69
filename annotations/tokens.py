"""API token lifetime: tokens expire, rotate at each token login, and are revoked when their
user's password changes or the user logs out of the web app.

DRF's own Token model is kept (one token per user), so existing clients and `Token` rows keep
working; what changes is that a token no longer lives forever. Tokens are still stored as DRF
stores them (not hashed): see README, Security.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import pre_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed


def token_ttl() -> timedelta:
    return timedelta(hours=getattr(settings, "DDI_API_TOKEN_TTL_HOURS", 24))


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF token authentication that refuses (and deletes) a token older than the TTL."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token.created < timezone.now() - token_ttl():
            token.delete()
            raise AuthenticationFailed("The token has expired; log in again for a new one.")
        return user, token


def issue_token(user) -> Token:
    """A fresh token for `user`, replacing any earlier one (rotation at each login).

    Two logins of one user at once rotate one after the other: the user's row is locked first,
    so the second never meets the first's token on the one-token-per-user constraint (that was a
    500 in the load test's login burst).
    """
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


def revoke_tokens(user) -> int:
    deleted, _ = Token.objects.filter(user=user).delete()
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
