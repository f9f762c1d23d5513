"""Writes the golden files that pin the signed-config format: ``python -m edge_agent.wire.config_golden OUTDIR``.

For each case ``<name>.bin`` (the sealed config) and ``<name>.json`` (``SignedConfig.to_json`` of what
``open_config`` must return). Signed with the wire golden files' TEST-ONLY key (``golden.golden_key``);
Ed25519 is deterministic and the body is canonical JSON, so the files are reproducible byte for byte.
Run it only for a new config format version; the files of a released one never change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_agent.wire.config import CONFIG_FORMAT_VERSION, SignedConfig, open_config, seal_config
from edge_agent.wire.golden import KEY_FILE, T0, golden_key

DEVICE = "golden-dev-01"


def cases() -> list[tuple[str, SignedConfig]]:
    depot = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "depot-north", "name": "Depot Nord ✓"},
         "geometry": {"type": "Polygon", "coordinates": [[[11.5, 48.1], [11.6, 48.1], [11.6, 48.2], [11.5, 48.1]]]}},
        {"type": "Feature", "properties": {"id": "yard", "radius_m": 150.5},
         "geometry": {"type": "Point", "coordinates": [-0.1276, 51.5072]}}]}
    return [
        ("01_thresholds", SignedConfig(DEVICE, 1, T0, T0 + 30 * 86400, None,
                                       {"idle_min_duration_s": 120, "coolant_temp_max_c": 104.5})),
        ("02_full", SignedConfig(DEVICE, 2, T0 + 3600.25, T0 + 3600.25 + 86400, "light_obd2",
                                 {"idle_engine_speed_rpm": 900.0}, depot)),
    ]


def write(outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    key = golden_key(outdir.parent.parent / KEY_FILE)
    written = []
    for name, config in cases():
        blob = seal_config(config, key)
        (outdir / f"{name}.bin").write_bytes(blob)
        doc = {"format_version": CONFIG_FORMAT_VERSION, "config": open_config(blob, key.public_key()).to_json()}
        (outdir / f"{name}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written += [outdir / f"{name}.bin", outdir / f"{name}.json"]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Write golden signed-config files (format v{CONFIG_FORMAT_VERSION}).")
    parser.add_argument("outdir", type=Path)
    for path in write(parser.parse_args(argv).outdir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
