"""``ConfigPushSettings``: the ``[config_push]`` section of ``agent.toml`` (parsed by ``edge_agent.config``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Where applied configs are kept, under ``agent.data_dir`` unless ``config_push.dir`` says otherwise.
DEFAULT_DIR = "config"


@dataclass(frozen=True, slots=True)
class ConfigPushSettings:
    #: The fleet's config-signing public key (Ed25519, PEM), delivered at enrolment and pinned: a config
    #: signed by any other key is refused.
    fleet_key: Path
    #: Directory of the applied (``current.cfg``) and last known good (``last_good.cfg``) sealed configs.
    dir: Path
