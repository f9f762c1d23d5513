"""KPI definitions, loaded once from ``kpis.toml`` (data, not code) and validated."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cloud_sync.governance.roles import Role

DEFINITIONS_FILE = Path(__file__).with_name("kpis.toml")


@dataclass(frozen=True)
class KpiDefinition:
    name: str
    unit: str
    owner: str
    description: str
    threshold: float | None = None
    direction: str | None = None  # "above" | "below"

    def breached(self, value: float | None) -> bool | None:
        """Whether ``value`` is beyond the threshold (None: no threshold, or no value)."""
        if self.threshold is None or value is None:
            return None
        return value > self.threshold if self.direction == "above" else value < self.threshold


@cache
def definitions() -> dict[str, KpiDefinition]:
    data = tomllib.loads(DEFINITIONS_FILE.read_text(encoding="utf-8"))
    roles = {r.value for r in Role}
    out: dict[str, KpiDefinition] = {}
    for name, d in data.items():
        if d.get("owner") not in roles:
            raise ValueError(f"{DEFINITIONS_FILE.name}: {name}.owner must be one of {sorted(roles)}")
        if ("threshold" in d) != ("direction" in d) or d.get("direction", "above") not in ("above", "below"):
            raise ValueError(f"{DEFINITIONS_FILE.name}: {name} needs threshold and direction (above|below) together")
        out[name] = KpiDefinition(name, str(d["unit"]), str(d["owner"]), str(d.get("description", "")),
                                  float(d["threshold"]) if "threshold" in d else None, d.get("direction"))
    return out
