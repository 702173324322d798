"""Read operations of the social core (HackSoft style: all reads go through here).

Every list selector returns a queryset whose evaluation costs a constant
number of queries (related rows are joined, counts are subqueries).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from feedmood.models import Follow, Post, Profile, Reaction

User = get_user_model()


def _count_subquery(queryset: QuerySet, group_field: str) -> Coalesce:
    """A correlated ``COUNT(*)`` subquery (avoids the join fan-out of several Counts)."""
    counted = queryset.order_by().values(group_field).annotate(c=Count("*")).values("c")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _liked_by(viewer: AbstractBaseUser | None) -> Exists | Value:
    if viewer is None or not viewer.is_authenticated:
        return Value(False)
    return Exists(Reaction.objects.filter(post=OuterRef("pk"), user=viewer, kind=Reaction.Kind.LIKE))


# --- Posts --------------------------------------------------------------------------


def post_list(
    *,
    viewer: AbstractBaseUser | None = None,
    author: AbstractBaseUser | None = None,
    followed_by: AbstractBaseUser | None = None,
) -> QuerySet[Post]:
    """Posts newest first, with author and ``liked_by_me`` loaded.

    ``author`` restricts to one user's posts; ``followed_by`` to posts of the
    people that user follows (a plain chronological home feed).
    """
    qs = Post.objects.select_related("author", "author__profile").annotate(liked_by_me=_liked_by(viewer))
    if author is not None:
        qs = qs.filter(author=author)
    if followed_by is not None:
        qs = qs.filter(author__in=Follow.objects.filter(follower=followed_by).values("followee"))
    return qs.order_by("-created_at", "-id")


def post_get(*, post_id: int, viewer: AbstractBaseUser | None = None) -> Post:
    """One post (404 if missing), shaped like ``post_list`` items."""
    return get_object_or_404(post_list(viewer=viewer), pk=post_id)


def post_get_for_update(*, post_id: int) -> Post:
    """One post without annotations (404 if missing), for services."""
    return get_object_or_404(Post.objects.select_related("author"), pk=post_id)


# --- Users --------------------------------------------------------------------------


def user_get(*, username: str) -> AbstractBaseUser:
    """An active user by exact username (404 if missing)."""
    return get_object_or_404(User.objects.select_related("profile"), username=username, is_active=True)


def user_public_profile(*, username: str, viewer: AbstractBaseUser | None = None) -> AbstractBaseUser:
    """A user with ``followers_count``, ``following_count``, ``posts_count`` and ``is_followed``.

    Consent and mood fields are deliberately not part of the public shape.
    """
    qs = (
        User.objects.filter(is_active=True)
        .select_related("profile")
        .annotate(
            followers_count=_count_subquery(Follow.objects.filter(followee=OuterRef("pk")), "followee"),
            following_count=_count_subquery(Follow.objects.filter(follower=OuterRef("pk")), "follower"),
            posts_count=_count_subquery(Post.objects.filter(author=OuterRef("pk")), "author"),
            is_followed=(
                Exists(Follow.objects.filter(followee=OuterRef("pk"), follower=viewer))
                if viewer is not None and viewer.is_authenticated
                else Value(False)
            ),
        )
    )
    return get_object_or_404(qs, username=username)


def followers_of(*, user: AbstractBaseUser) -> QuerySet:
    """Users following ``user``, most recent follow first."""
    return (
        User.objects.filter(following_links__followee=user, is_active=True)
        .select_related("profile")
        .order_by("-following_links__created_at", "-id")
    )


def following_of(*, user: AbstractBaseUser) -> QuerySet:
    """Users that ``user`` follows, most recent follow first."""
    return (
        User.objects.filter(follower_links__follower=user, is_active=True)
        .select_related("profile")
        .order_by("-follower_links__created_at", "-id")
    )


def follower_count(*, user: AbstractBaseUser) -> int:
    return Follow.objects.filter(followee=user).count()


def is_emotion_consenting(*, user: AbstractBaseUser) -> bool:
    """Whether the user opted in to emotion analysis (for the emotion app)."""
    return Profile.objects.filter(user=user, emotion_consent=True).exists()
