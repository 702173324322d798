"""Account API: logout, password change and reset, full export (thin views over ``feedmood.accounts``)."""

from __future__ import annotations

from django.contrib.auth import logout as session_logout
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedmood import accounts
from feedmood.apis import ERRORS, TokenApi, _valid
from feedmood.export import account_export
from feedmood.models import ApiToken

RESET_SENT = "If an account has this email, a message with a reset token was sent to it."


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()

    class Meta:
        ref_name = "Detail"


class LogoutApi(APIView):
    """Revoke the token this request was made with (other devices stay signed in)."""

    @extend_schema(request=None, responses={204: None}, tags=["auth"])
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            accounts.token_revoke(token=request.auth)
        session_logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordChangeApi(APIView):
    """Change your password: every token is revoked and a new one is returned."""

    class InputSerializer(serializers.Serializer):
        old_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
        new_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)

        class Meta:
            ref_name = "PasswordChangeInput"

    @extend_schema(request=InputSerializer, responses={200: TokenApi.OutputSerializer, 400: ERRORS}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request)
        key = accounts.password_change(user=request.user, **data)
        return Response(TokenApi.OutputSerializer({"token": key}).data)


class PasswordResetApi(APIView):
    """Ask for a password-reset token by email (the answer is the same whether the email is known or not)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()

        class Meta:
            ref_name = "PasswordResetInput"

    @extend_schema(request=InputSerializer, responses={202: DetailSerializer, 400: ERRORS}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request)
        accounts.password_reset_request(email=data["email"])
        return Response({"detail": RESET_SENT}, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmApi(APIView):
    """Set a new password with the mailed ``uid`` and ``token``; every API token of the account is revoked."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        uid = serializers.CharField(max_length=64)
        token = serializers.CharField(max_length=128)
        new_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)

        class Meta:
            ref_name = "PasswordResetConfirmInput"

    @extend_schema(request=InputSerializer, responses={200: DetailSerializer, 400: ERRORS}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request)
        accounts.password_reset_confirm(**data)
        return Response({"detail": "Your password was changed: sign in with it at /api/auth/token/."})


class AccountExportApi(APIView):
    """Download everything stored about you as a zip: profile, posts with their images, follows, likes, emotion data."""

    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 401: OpenApiResponse(description="Not signed in")},
        tags=["profile"],
    )
    def get(self, request: Request) -> FileResponse:
        archive = account_export(user=request.user)
        filename = f"feedmood-{request.user.get_username()}.zip"
        response = FileResponse(archive, as_attachment=True, filename=filename, content_type="application/zip")
        response["Cache-Control"] = "private, no-store"
        return response
