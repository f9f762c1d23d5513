"""A real, small filesystem that fills up (tmpfs of a few hundred KiB), for full-disk tests.

Mounting needs root (CAP_SYS_ADMIN); elsewhere the tests that use it skip and say how to enable them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tiny_disk(where: Path, size: str = "2m") -> Iterator[Path]:
    mount = where / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a {size} tmpfs (a real full disk) needs root; run the suite as root to enable")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
