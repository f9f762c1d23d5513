"""What every preflight check of ``fleet-provision check`` returns, and how the results are shown.

A check ends in ``pass``, ``fail`` (with ``fix``: what the installer should do) or ``skip`` (it could not
run because something it needs failed or is not configured; the reason is in ``summary``). The command
exits non-zero when any check failed. ``render_text`` is for a person at a terminal, ``as_json`` for scripts.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

PASS, FAIL, SKIP = "pass", "fail", "skip"
#: A progress line is rewritten at most this often on a terminal (and printed at most this often elsewhere).
PROGRESS_EVERY_S = 1.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # PASS | FAIL | SKIP
    summary: str
    fix: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary, "fix": self.fix,
                "details": self.details}


def passed(name: str, summary: str, **details: Any) -> CheckResult:
    return CheckResult(name, PASS, summary, "", details)


def failed(name: str, summary: str, fix: str, **details: Any) -> CheckResult:
    return CheckResult(name, FAIL, summary, fix, details)


def skipped(name: str, why: str) -> CheckResult:
    return CheckResult(name, SKIP, why)


Progress = Callable[[str], None]


class TerminalProgress:
    """Progress while waiting (for CAN traffic, a GNSS fix, the cloud's ack): one line rewritten in place on
    a terminal, else a line per phase (the text before its first ':') and then at most one every
    ``PROGRESS_EVERY_S``; nothing at all when ``quiet`` (``--json``)."""

    def __init__(self, stream: TextIO = sys.stderr, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self._last = 0.0
        self._phase = ""
        self._width = 0

    def __call__(self, text: str) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        phase = text.split(":", 1)[0]  # "waiting for a GNSS fix on /dev/ttyS1", "asking the J1939 ECUs ..."
        if phase == self._phase and now - self._last < PROGRESS_EVERY_S:
            return
        self._last, self._phase = now, phase
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.tty and self._width and not self.quiet:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        self._width = 0


_MARK = {PASS: "PASS", FAIL: "FAIL", SKIP: "skip"}


def render_line(result: CheckResult) -> str:
    lines = [f"[{_MARK[result.status]}] {result.name}: {result.summary}"]
    if result.fix:
        lines.append(f"       fix: {result.fix}")
    return "\n".join(lines)


def render_summary(results: Sequence[CheckResult]) -> str:
    failures = [r.name for r in results if r.failed]
    if failures:
        return f"{len(failures)} of {len(results)} checks failed ({', '.join(failures)}): fix them and re-run"
    return f"all {sum(r.status == PASS for r in results)} checks passed" + (
        f" ({sum(r.status == SKIP for r in results)} skipped)" if any(r.status == SKIP for r in results) else "")


def as_json(device_id: str, results: Sequence[CheckResult]) -> dict[str, Any]:
    return {"ok": not any(r.failed for r in results), "device_id": device_id,
            "checks": [r.as_dict() for r in results]}
