"""The sealed configs on disk: the one running (``current.cfg``) and the one before it (``last_good.cfg``).

Both hold the signed blob exactly as received, so a restart verifies them again with the pinned key
(a file edited on the device is refused like a forged push). Every write is atomic: a temporary file
in the same directory, fsynced, renamed over the target, then the directory fsynced, so a power cut
leaves the old file or the new one, never half of either.
"""

from __future__ import annotations

import os
from pathlib import Path

CURRENT = "current.cfg"
LAST_GOOD = "last_good.cfg"


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (see the module docstring)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself is durable only once the directory is
    finally:
        os.close(dir_fd)


class ConfigFiles:
    """``current.cfg`` and ``last_good.cfg`` in one directory (created on first use)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.current = directory / CURRENT
        self.last_good = directory / LAST_GOOD

    def read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def promote(self, blob: bytes) -> None:
        """Make ``blob`` current; the config it replaces becomes the last known good one."""
        self.dir.mkdir(parents=True, exist_ok=True)
        previous = self.read(self.current)
        if previous is not None and previous != blob:
            write_atomic(self.last_good, previous)
        write_atomic(self.current, blob)

    def demote(self) -> None:
        """``current.cfg`` failed to load at start: the last known good one takes its place."""
        good = self.read(self.last_good)
        if good is None:
            self.current.unlink(missing_ok=True)
        else:
            write_atomic(self.current, good)
