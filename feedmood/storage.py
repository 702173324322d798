"""Media storage whose writes are all-or-nothing.

``FileSystemStorage`` writes straight to the final name, so a full disk (``ENOSPC``) or
an I/O error mid-write leaves a truncated or empty file that no row references.  Here the
bytes go to a hidden ``.partial-*`` file in the target directory, are flushed and
``fsync``-ed (delayed-allocation file systems report a full disk only then), and only
then hard-linked to the final name; the partial file is removed whatever happens.
A process killed mid-write can still leave a ``.partial-*`` file:
``emotion.housekeeping.media_orphans_sweep`` removes those.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

from django.core.files.storage import FileSystemStorage
from django.utils._os import safe_makedirs

PARTIAL_PREFIX = ".partial-"


class AtomicFileSystemStorage(FileSystemStorage):
    def _save(self, name: str, content: Any) -> str:
        directory = os.path.dirname(self.path(name))
        safe_makedirs(directory, self.directory_permissions_mode or 0o777, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in content.chunks():
                    handle.write(chunk if isinstance(chunk, bytes) else chunk.encode())
                handle.flush()
                os.fsync(handle.fileno())
            full_path = self._link_available(partial, name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        if self.file_permissions_mode is not None:
            os.chmod(full_path, self.file_permissions_mode)
        self._ensure_location_group_id(full_path)
        return os.path.relpath(full_path, self.location).replace("\\", "/")

    def _link_available(self, partial: str, name: str) -> str:
        """Hard-link the finished file to ``name`` or the next free name; returns the full path."""
        while True:
            full_path = self.path(name)
            try:
                os.link(partial, full_path)
                return full_path
            except FileExistsError:
                name = self.get_available_name(name)
