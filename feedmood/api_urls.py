"""URL routes of the social core API (mounted under ``/api/``)."""

from django.urls import path

from feedmood import account_apis, apis

app_name = "feedmood"

urlpatterns = [
    path("health/", apis.HealthApi.as_view(), name="health"),
    path("auth/signup/", apis.SignupApi.as_view(), name="signup"),
    path("auth/token/", apis.TokenApi.as_view(), name="token"),
    path("me/", apis.MeApi.as_view(), name="me"),
    path("auth/logout/", account_apis.LogoutApi.as_view(), name="logout"),
    path("auth/password-reset/", account_apis.PasswordResetApi.as_view(), name="password-reset"),
    path("auth/password-reset/confirm/", account_apis.PasswordResetConfirmApi.as_view(), name="password-reset-confirm"),
    path("me/password/", account_apis.PasswordChangeApi.as_view(), name="password-change"),
    path("me/export/", account_apis.AccountExportApi.as_view(), name="account-export"),
    path("users/<str:username>/", apis.UserDetailApi.as_view(), name="user-detail"),
    path("users/<str:username>/follow/", apis.UserFollowApi.as_view(), name="user-follow"),
    path("users/<str:username>/followers/", apis.UserFollowersApi.as_view(), name="user-followers"),
    path("users/<str:username>/following/", apis.UserFollowingApi.as_view(), name="user-following"),
    path("posts/", apis.PostListApi.as_view(), name="post-list"),
    path("posts/<int:post_id>/", apis.PostDetailApi.as_view(), name="post-detail"),
    path("posts/<int:post_id>/image/", apis.PostImageApi.as_view(), name="post-image"),
    path("posts/<int:post_id>/like/", apis.PostLikeApi.as_view(), name="post-like"),
]
