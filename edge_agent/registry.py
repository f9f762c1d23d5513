"""Lazy ``name -> "module:Class"`` registries, as python-can lists its interfaces.

A backend is imported only when chosen, so a vehicle image without an optional dependency can
still run every other backend.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from edge_agent.errors import ConfigError


def load_class(registry: Mapping[str, str], name: str, what: str) -> type:
    """Import and return the class registered under ``name``; unknown names list the choices."""
    try:
        target = registry[name]
    except KeyError:
        choices = ", ".join(sorted(registry))
        raise ConfigError(f"unknown {what} {name!r}; choose one of: {choices}") from None
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, attr)
    if not isinstance(cls, type):
        raise ConfigError(f"{what} {name!r} points at {target}, which is not a class")
    return cls
