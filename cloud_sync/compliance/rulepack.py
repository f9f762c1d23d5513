"""Rule packs: one TOML file per regulation under ``rules/``, holding every limit with its citation.

The numbers live in the pack, the arithmetic in the engine the pack names (``engine = "us_property"``):
an engine declares the rule kinds it knows and the parameters each needs, and a pack is checked against
that on load, so a typo in a pack fails loudly instead of silently dropping a limit. Durations in a pack
end in ``_min`` (minutes) and are handed to the engines in seconds.

``[choices]`` lists alternatives the carrier picks between (the US 60 h / 7 day or 70 h / 8 day cycle);
the first listed is the default.
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud_sync.compliance.duty import MINUTE, Segment
from cloud_sync.compliance.report import HoursReport
from edge_agent.errors import ConfigError

RULES_DIR = Path(__file__).parent / "rules"
#: Engine name -> module; imported on first use (DESIGN.md: backends listed as data).
ENGINES = {"us_property": "cloud_sync.compliance.us_hos", "eu_561": "cloud_sync.compliance.eu_561"}


class Engine(Protocol):
    KINDS: dict[str, tuple[str, ...]]

    def evaluate(self, pack: RulePack, segments: list[Segment], now: int, choices: dict[str, str]) -> HoursReport:
        ...


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: str
    cite: str
    summary: str
    params: MappingProxyType[str, Any]

    def seconds(self, name: str) -> int:
        """A ``<name>_min`` parameter in seconds."""
        return int(self.params[f"{name}_min"]) * MINUTE

    def count(self, name: str) -> int:
        return int(self.params[name])


@dataclass(frozen=True, slots=True)
class RulePack:
    name: str
    title: str
    regulation: str
    source: str
    engine: str
    timezone: ZoneInfo
    rules: MappingProxyType[str, Rule]
    choices: MappingProxyType[str, tuple[str, ...]]
    assumptions: tuple[str, ...] = field(default=())

    def rule(self, kind: str, choices: dict[str, str] | None = None) -> Rule:
        """The pack's rule of ``kind``; where a choice offers several, the chosen (or default) one."""
        found = [r for r in self.rules.values() if r.kind == kind]
        if len(found) == 1:
            return found[0]
        for choice, options in self.choices.items():
            if found and set(options) == {r.id for r in found}:
                picked = (choices or {}).get(choice, options[0])
                return self.rules[picked]
        raise ConfigError(f"rule pack {self.name!r} has {len(found)} rules of kind {kind!r}")

    def check_choices(self, choices: dict[str, str]) -> None:
        for choice, picked in choices.items():
            if choice not in self.choices:
                raise ConfigError(f"rule pack {self.name!r} has no choice {choice!r} (it has {sorted(self.choices)})")
            if picked not in self.choices[choice]:
                raise ConfigError(f"choice {choice!r} of {self.name!r} is one of {list(self.choices[choice])}, "
                                  f"not {picked!r}")

    def engine_module(self) -> Engine:
        module: Engine = importlib.import_module(ENGINES[self.engine])
        return module

    def evaluate(self, segments: list[Segment], now: int, choices: dict[str, str] | None = None) -> HoursReport:
        picked = dict(choices or {})
        self.check_choices(picked)
        return self.engine_module().evaluate(self, segments, now, picked)


def available() -> list[str]:
    return sorted(p.stem for p in RULES_DIR.glob("*.toml") if not p.stem.endswith(".vectors"))


def load(name: str) -> RulePack:
    """The bundled pack ``name`` (file ``rules/<name>.toml``)."""
    if name not in available():
        raise ConfigError(f"no rule pack {name!r}; bundled: {available()}")
    return load_file(RULES_DIR / f"{name}.toml")


def load_file(path: Path) -> RulePack:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"rule pack {path}: {exc}") from exc
    where = f"rule pack {path.name}"
    for key in ("pack", "title", "regulation", "source", "engine", "timezone", "rules"):
        if key not in raw:
            raise ConfigError(f"{where}: missing {key!r}")
    if raw["engine"] not in ENGINES:
        raise ConfigError(f"{where}: unknown engine {raw['engine']!r} (known: {sorted(ENGINES)})")
    try:
        tz = ZoneInfo(raw["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{where}: unknown time zone {raw['timezone']!r}") from exc
    kinds: dict[str, tuple[str, ...]] = importlib.import_module(ENGINES[raw["engine"]]).KINDS
    rules = {}
    for rule_id, body in raw["rules"].items():
        kind = body.get("kind")
        if kind not in kinds:
            raise ConfigError(f"{where}: rule {rule_id!r} has kind {kind!r}; engine {raw['engine']!r} knows "
                              f"{sorted(kinds)}")
        if not body.get("cite"):
            raise ConfigError(f"{where}: rule {rule_id!r} cites nothing")
        params = {k: v for k, v in body.items() if k not in ("kind", "cite", "summary")}
        missing = [p for p in kinds[kind] if p not in params]
        if missing:
            raise ConfigError(f"{where}: rule {rule_id!r} ({kind}) lacks {missing}")
        for k, v in params.items():
            if k.endswith("_min") and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ConfigError(f"{where}: {rule_id}.{k} must be a whole number of minutes >= 0, got {v!r}")
        rules[rule_id] = Rule(rule_id, kind, body["cite"], body.get("summary", ""), MappingProxyType(params))
    present = {r.kind for r in rules.values()}
    absent = sorted(set(kinds) - present)
    if absent:
        raise ConfigError(f"{where}: engine {raw['engine']!r} needs rules of kinds {absent}")
    choices = {}
    for choice, options in raw.get("choices", {}).items():
        if not options or any(o not in rules for o in options):
            raise ConfigError(f"{where}: choice {choice!r} lists unknown rules {options!r}")
        choices[choice] = tuple(options)
    return RulePack(raw["pack"], raw["title"], raw["regulation"], raw["source"], raw["engine"], tz,
                    MappingProxyType(rules), MappingProxyType(choices), tuple(raw.get("assumptions", ())))
