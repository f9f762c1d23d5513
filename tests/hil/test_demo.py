"""The one-command demo end to end, in exit mode: a real cloud (Mosquitto with mutual TLS, the API under
uvicorn, an ingest worker), a truck and a van enrolled through the real provisioning commands, real agents
against the simulators (a network drop and an agent kill on the truck). Then every figure of the demo's
summary is checked against the cloud's HTTP API (``create_app`` over the store the demo left behind).

This one test replaces the earlier depot-with-[cloud] scenario test: the demo runs ``depot_day``, whose
expectations (checked through the API, gaps and drops included) are part of the summary's verdict.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud_sync.main import create_app
from cloud_sync.settings import Settings
from tests.mqtt_broker import mosquitto_or_skip

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "demo-test-admin-token-0123456789"


def _events(api: TestClient, device: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/v1/vehicles/{device}/events", params=params).json()
        out += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return out


@pytest.mark.slow
def test_demo_exit_mode_summary_matches_the_cloud_api(tmp_path: Path) -> None:
    mosquitto_or_skip()
    out = subprocess.run([sys.executable, "-m", "hil.cli", "demo", "--exit", "--json", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["passed"] is True
    truck, van = summary["vehicles"]["truck-01"], summary["vehicles"]["van-01"]
    assert truck["expectations"]["passed"] == truck["expectations"]["total"] > 0
    assert van["expectations"]["passed"] == van["expectations"]["total"] > 0
    assert truck["agent_starts"] == 2 and truck["network_resets"] >= 1  # killed once; its link cut once
    assert truck["geofence_visits"] == ["depot", "customer_a", "fuel_yard"]
    assert truck["faults"] == [{"fault": "SPN 110 FMI 16", "appeared": 1, "cleared": 1}]
    assert van["faults"] == [{"fault": "P0301 (stored)", "appeared": 1, "cleared": 0}]

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", admin_token=TOKEN,
                        ca_dir=tmp_path / "cloud" / "ca")
    with TestClient(create_app(settings, run_migrations=False), headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        listed = {v["device"]["id"]: v["device"] for v in api.get("/v1/vehicles").json()["data"]}
        for device, v in summary["vehicles"].items():
            assert listed[device]["vin"] == v["vin"] and listed[device]["profile"] == v["profile"]
            events = _events(api, device)
            kinds = [e["kind"] for e in events]
            trips = [e["payload"] for e in events if e["kind"] == "trip_ended"]
            idles = [e["payload"] for e in events if e["kind"] == "idle_ended"]
            assert v["trips"]["count"] == len(trips) == 1
            assert v["trips"]["distance_km"] == pytest.approx(sum(t["distance_km"] for t in trips))
            assert v["trips"]["fuel_l"] == pytest.approx(sum(t["fuel_l"] for t in trips)) and v["trips"]["fuel_l"] > 0
            assert v["idle"]["count"] == len(idles) >= 1
            assert v["idle"]["duration_s"] == pytest.approx(sum(i["duration_s"] for i in idles))
            assert v["geofence_visits"] == [e["payload"]["fence_id"] for e in events
                                            if e["kind"] == "geofence_entered"]
            assert sum(f["appeared"] for f in v["faults"]) == kinds.count("dtc_appeared") + kinds.count("fault_raised")
            assert sum(f["cleared"] for f in v["faults"]) == kinds.count("dtc_cleared") + kinds.count("fault_cleared")
            health = api.get(f"/v1/vehicles/{device}/health").json()
            assert v["batches_verified"] == health["batches_committed"] > 0
            assert v["records"] == health["records_received"]
            assert health["open_gaps"] == [] and v["open_gaps"] == 0 and v["dropped"] == 0
            if v["maintenance_issues"] is not None:  # the maintenance module opened an issue per fault
                issues = api.get("/v1/maintenance/issues", params={"device": device}).json()["data"]
                assert [(i["id"], i["status"]) for i in issues] == [(m["id"], m["status"])
                                                                  for m in v["maintenance_issues"]]
                assert len(issues) == len(v["faults"])
    assert truck["idle"]["duration_s"] == pytest.approx(14.4, abs=2.0)  # 12 scenario minutes at x50
    assert truck["trips"]["distance_km"] == pytest.approx(6.0, abs=0.5)
    # Rows leave an outbox only when the cloud acked them: both drained.
    for device in ("truck-01", "van-01"):
        outbox = sqlite3.connect(f"file:{tmp_path / device / 'data' / 'outbox.db'}?mode=ro", uri=True)
        try:
            left = outbox.execute("SELECT count(*) FROM records WHERE kind NOT IN ('sample', 'position')").fetchone()[0]
        finally:
            outbox.close()
        assert left == 0, device
