"""Services, signals and the on-commit helpers other apps build on."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from feedmood import selectors, services, signals, tasks
from feedmood.models import Follow, Post, Profile
from feedmood.tasks_utils import enqueue_on_commit
from tests.conftest import make_image_bytes
from tests.factories import PostFactory, UserFactory

pytestmark = pytest.mark.django_db


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, sender, **kwargs) -> None:
        self.calls.append({"sender": sender, **kwargs})


@pytest.fixture
def recorder():
    return Recorder()


def test_profile_created_for_every_user() -> None:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    assert Profile.objects.filter(user=user).exists()


def test_post_created_signal_sent_on_commit(user, recorder, django_capture_on_commit_callbacks) -> None:
    signals.post_created.connect(recorder)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            post = services.post_create(author=user, text="hi")
        assert recorder.calls == []  # nothing before commit
        for callback in callbacks:
            callback()
    finally:
        signals.post_created.disconnect(recorder)
    assert recorder.calls == [{"sender": Post, "post": post, "signal": signals.post_created}]


def test_post_created_not_sent_on_rollback(user, recorder, django_capture_on_commit_callbacks) -> None:
    signals.post_created.connect(recorder)
    try:
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
            services.post_create(author=user, text="doomed")
            raise RuntimeError("rollback")
    finally:
        signals.post_created.disconnect(recorder)
    assert recorder.calls == [] and not Post.objects.exists()


def test_consent_signals(user, recorder, django_capture_on_commit_callbacks) -> None:
    withdrawn, granted = Recorder(), Recorder()
    signals.consent_withdrawn.connect(withdrawn)
    signals.consent_granted.connect(granted)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            profile = services.profile_update(user=user, data={"emotion_consent": True})
        assert profile.emotion_consent_at is not None
        assert [c["user"] for c in granted.calls] == [user] and withdrawn.calls == []
        with django_capture_on_commit_callbacks(execute=True):
            services.profile_update(user=user, data={"emotion_consent": True})  # no transition
            services.profile_update(user=user, data={"emotion_consent": False})
        assert len(granted.calls) == 1
        assert [(c["sender"], c["user"]) for c in withdrawn.calls] == [(Profile, user)]
        assert withdrawn.calls[0]["profile"].emotion_consent is False
    finally:
        signals.consent_withdrawn.disconnect(withdrawn)
        signals.consent_granted.disconnect(granted)


def test_profile_update_validates_in_service(user) -> None:
    with pytest.raises(ValidationError) as exc:
        services.profile_update(user=user, data={"mood_strength": float("nan")})
    assert "mood_strength" in exc.value.message_dict
    with pytest.raises(ValidationError):
        services.profile_update(user=user, data={"mood_half_life_hours": 0.1})
    with pytest.raises(ValidationError):
        services.profile_update(user=user, data={"is_staff": True})


def test_post_create_rejects_bad_image_in_service(user) -> None:
    with pytest.raises(ValidationError) as exc:
        services.post_create(author=user, image=SimpleUploadedFile("a.png", b"nope"))
    assert exc.value.message_dict["image"][0].startswith("Not an image")
    post = services.post_create(author=user, image=SimpleUploadedFile("a.bin", make_image_bytes("PNG")))
    assert post.image.name.endswith(".png")


def test_post_delete_permission(user) -> None:
    post = PostFactory(author=user)
    with pytest.raises(PermissionDenied):
        services.post_delete(post=post, user=UserFactory())
    services.post_delete(post=post, user=user)
    assert not Post.objects.exists()


def test_follow_services(user) -> None:
    bob = UserFactory(username="bob")
    assert services.follow(follower=user, followee=bob)[1] is True
    assert services.follow(follower=user, followee=bob)[1] is False
    assert list(selectors.following_of(user=user)) == [bob]
    assert list(selectors.followers_of(user=bob)) == [user]
    with pytest.raises(ValidationError):
        services.follow(follower=user, followee=user)
    assert services.unfollow(follower=user, followee=bob) is True
    assert services.unfollow(follower=user, followee=bob) is False
    assert not Follow.objects.exists()


def test_like_count_denormalised_and_recount(user) -> None:
    post = PostFactory()
    assert services.like(user=user, post=post) == (True, 1)
    assert services.like(user=user, post=post) == (False, 1)
    Post.objects.filter(pk=post.pk).update(like_count=42)  # drift
    assert tasks.recount_likes(post.pk) == 1
    assert services.unlike(user=user, post=post) == (True, 0)
    assert services.unlike(user=user, post=post) == (False, 0)
    assert tasks.recount_likes(999999) is None


def test_enqueue_on_commit_runs_eagerly_after_commit(user, django_capture_on_commit_callbacks) -> None:
    post = PostFactory()
    services.like(user=user, post=post)
    Post.objects.filter(pk=post.pk).update(like_count=7)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue_on_commit(tasks.recount_likes, post.pk)
    assert len(callbacks) == 1
    post.refresh_from_db()
    assert post.like_count == 7  # not before commit
    callbacks[0]()
    post.refresh_from_db()
    assert post.like_count == 1


def test_ping_task_eager() -> None:
    assert tasks.ping.delay().get(timeout=1) == "pong"


def test_admin_pages_render(client) -> None:
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    post = PostFactory(author=admin)
    client.force_login(admin)
    for url in [
        "/admin/",
        "/admin/feedmood/profile/",
        "/admin/feedmood/post/",
        "/admin/feedmood/follow/",
        "/admin/feedmood/reaction/",
        f"/admin/feedmood/post/{post.pk}/change/",
        "/admin/feedmood/post/?q=post",
        "/admin/django_celery_beat/periodictask/",
    ]:
        assert client.get(url).status_code == 200, url


@pytest.mark.django_db(transaction=True)
def test_failing_receiver_after_commit_is_logged_not_500(auth_client, settings, caplog) -> None:
    settings.FEEDMOOD_ON_COMMIT_PROPAGATE = False  # production policy

    def broken(sender, **kwargs):
        raise RuntimeError("receiver exploded")

    signals.post_created.connect(broken)
    try:
        resp = auth_client.post("/api/posts/", {"text": "still fine"})
    finally:
        signals.post_created.disconnect(broken)
    assert resp.status_code == 201
    assert Post.objects.filter(text="still fine").exists()
    assert "receiver exploded" in caplog.text
