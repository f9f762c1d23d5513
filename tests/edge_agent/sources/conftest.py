"""Fixtures for the CAN source tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hil.slcan_adapter import SlcanEmulator


@pytest.fixture
def emulator() -> Iterator[SlcanEmulator]:
    """An slcan adapter emulator on a real pty."""
    emu = SlcanEmulator()
    try:
        yield emu
    finally:
        emu.close()
