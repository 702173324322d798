"""Token authentication that reads the user's per-request rows with the token, in one query."""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's ``Authorization: Token <key>`` scheme, same rules and errors.

    DRF reads the token and its user; this also joins the one-to-one rows named in
    ``settings.FEEDMOOD_AUTH_USER_RELATED`` (the profile and the mood state), which
    the feed reads on every request: one query instead of two.
    """

    def authenticate_credentials(self, key: str):
        model = self.get_model()
        related = ["user", *(f"user__{name}" for name in settings.FEEDMOOD_AUTH_USER_RELATED)]
        try:
            token = model.objects.select_related(*related).get(key=key)
        except model.DoesNotExist:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return (token.user, token)
