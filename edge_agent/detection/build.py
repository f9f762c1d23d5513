"""Build the detectors for a profile and a configuration (the composition root calls this once,
and again on SIGHUP).

Thresholds are the profile's ``[thresholds]`` with the config's ``[detection.thresholds]`` on top
(a fleet can tune a limit without editing a profile). A detector whose required thresholds are
missing is left out; geofences run only when a GeoJSON file is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.counters import Counters
from edge_agent.detection import DETECTORS, Detector
from edge_agent.detection.faults import FaultDetector
from edge_agent.detection.geofence import GeofenceDetector
from edge_agent.detection.geojson import Fence, load_geofences
from edge_agent.detection.idle import REQUIRED as IDLE_REQUIRED
from edge_agent.detection.idle import IdleDetector
from edge_agent.detection.trips import TripDetector
from firmware_profiles import Profile


def build_detectors(
    profile: Profile, config: AgentConfig | None, counters: Counters, *, geofences: Path | None = None,
    fences: Sequence[Fence] | None = None,
) -> dict[str, Detector]:
    """Detectors keyed by their ``DETECTORS`` name. ``geofences`` overrides the config's file
    (``fleet-agent replay --geofences``), ``fences`` (already parsed: a pushed config's) overrides both.
    Raises ``ConfigError`` for a bad geofence file."""
    thresholds = dict(profile.thresholds)
    if config is not None:
        thresholds.update(config.thresholds)
    detectors: dict[str, Detector] = {}
    if all(k in thresholds for k in IDLE_REQUIRED):
        detectors["idle"] = IdleDetector(thresholds, counters)
    detectors["faults"] = FaultDetector(thresholds, counters)
    fence_file = geofences if geofences is not None else (config.geofences if config is not None else None)
    if fences is not None:
        detectors["geofence"] = GeofenceDetector(fences, thresholds, counters)
    elif fence_file is not None:
        detectors["geofence"] = GeofenceDetector(load_geofences(fence_file), thresholds, counters)
    detectors["trips"] = TripDetector(thresholds, counters, units={n: s.unit for n, s in profile.signals.items()})
    assert set(detectors) <= set(DETECTORS)
    return detectors
