"""Bounded ``?wait=``: a request may block a server thread waiting for its analysis only if a slot is free.

Slots: ``FEEDMOOD_WAITERS_PER_PROCESS`` per server process (a semaphore: the other threads stay free
for everything else, health checks included) and ``FEEDMOOD_WAITERS_PER_USER`` per user across all
processes (a counter in the shared cache, expiring on its own if a process dies holding it).  A
request that gets no slot is answered 202 at once, as without ``?wait``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.conf import settings
from django.core.cache import cache

from feedmood.cache import counter_add

#: Seconds after which a per-user slot expires even if never released (longer than any wait).
USER_SLOT_TTL_SECONDS = 60

_lock = threading.Lock()
_process_slots: dict[int, threading.BoundedSemaphore] = {}


def _process_semaphore(size: int) -> threading.BoundedSemaphore:
    with _lock:
        return _process_slots.setdefault(size, threading.BoundedSemaphore(size))


def _user_key(user_id: int) -> str:
    return f"analysis-waiters:{user_id}"


def _take_user_slot(user_id: int) -> bool:
    if counter_add(cache, _user_key(user_id), 1, USER_SLOT_TTL_SECONDS) <= int(settings.FEEDMOOD_WAITERS_PER_USER):
        return True
    _release_user_slot(user_id)
    return False


def _release_user_slot(user_id: int) -> None:
    with suppress(ValueError):
        cache.decr(_user_key(user_id))


@contextmanager
def wait_slot(user_id: int) -> Iterator[bool]:
    """Yield whether this request may wait; the slots are released on exit."""
    size = int(settings.FEEDMOOD_WAITERS_PER_PROCESS)
    semaphore = _process_semaphore(size) if size > 0 else None
    if semaphore is None or not semaphore.acquire(blocking=False):
        yield False
        return
    try:
        if not _take_user_slot(user_id):
            yield False
            return
        try:
            yield True
        finally:
            _release_user_slot(user_id)
    finally:
        semaphore.release()
