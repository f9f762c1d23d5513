"""Cython kernels and their pure-Python twins, behind one selector.

Each kernel ``foo`` lives in ``native/_foo.pyx`` (compiled by ``pip install``) and has a twin in
``native/foo_py.py`` with the same signature. ``kernel("foo")`` returns the compiled module when it
was built and ``FLEET_PURE_PYTHON`` is unset or ``0``; otherwise the twin. Kernels take and return
``array.array`` buffers (no NumPy on the vehicle) and never touch Python objects inside their loops.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

PURE_ENV = "FLEET_PURE_PYTHON"


def pure_forced() -> bool:
    """True when the environment asks for the pure-Python twins."""
    return os.environ.get(PURE_ENV, "0").strip().lower() not in ("", "0", "false", "no")


def kernel(name: str) -> ModuleType:
    """The implementation module of kernel ``name`` (compiled if available and not forced off)."""
    if not pure_forced():
        try:
            return importlib.import_module(f"native._{name}")
        except ImportError:
            pass
    return importlib.import_module(f"native.{name}_py")


def is_compiled(module: ModuleType) -> bool:
    """True if ``module`` is a compiled extension rather than a Python twin."""
    return not (module.__file__ or "").endswith(".py")
