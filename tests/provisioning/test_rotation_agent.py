"""A running ``fleet-agent`` loses nothing, and needs no restart, when its device rotates the signing key.

A real agent process reads the HIL truck over the slcan emulator and sends through the TLS broker to the
ingest worker; ``fleet-provision rotate-key`` runs while it sends. The agent's uplink notices the rotation
on disk (``edge_agent.uplink.signing``): it seals nothing while the rotation is under way and signs with the
new key from the next batch. What it sealed before is accepted with the retired key, nothing is refused,
and after the switch the cloud takes batches signed with the new key. In the end the outbox is empty with
nothing quarantined, and the cloud holds every record id the agent made, with no hole.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cloud_sync.store import make_engine
from cloud_sync.store.devices import retired_keys
from cloud_sync.store.schema import records
from edge_agent.outbox.schema import IDS_PER_MS
from hil.truck_ecu import TruckState
from provisioning.enroll import AGENT_TOML
from provisioning.identity import load_identity
from tests.provisioning.cloud_rig import REPO, Cloud, enrolled, provision, rewire
from tests.provisioning.test_check import truck
from tests.provisioning.vehicle import BusAdapter

#: Deadline for each wait below (the agent starting, the cloud catching up): a hang, not a speed bound.
WAIT_S = 60.0


def wait_for(what: str, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} within {WAIT_S} s"
        time.sleep(0.1)


def status(d: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((d.parent / "data" / "status.json").read_text()))
    except (OSError, ValueError):
        return {}


def start_agent(d: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(d / AGENT_TOML)],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    wait_for("agent status", lambda: status(d).get("pid") == proc.pid)
    return proc


def stop_agent(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=WAIT_S) == 0


def cloud_ids(cloud: Cloud, device_id: str) -> list[int]:
    engine = make_engine(cloud.db_url)
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(select(records.c.record_id).where(records.c.device_id == device_id))]
    engine.dispose()
    return sorted(ids)


def test_a_running_agent_loses_nothing_across_a_rotation(cloud: Cloud, tmp_path: Path) -> None:
    cloud.start_worker()
    d = enrolled(cloud, tmp_path / "etc")
    device_id = load_identity(d).device_id
    log = tmp_path / "agent.log"
    with truck(BusAdapter(250_000)) as vehicle:
        rewire(d, vehicle.adapter.port, None)
        agent = start_agent(d, log)
        try:
            wait_for("records in the cloud", lambda: len(cloud_ids(cloud, device_id)) > 0)
            old_fp = status(d)["uplink"]["signing_key"]
            rotated = provision("--json", "rotate-key", "--dir", str(d))
            assert rotated.returncode == 0, rotated.stdout + rotated.stderr
            new_fp = json.loads(rotated.stdout)["fingerprint"][:16]
            assert new_fp != old_fp
            wait_for("the agent on the new key", lambda: status(d).get("uplink", {}).get("signing_key") == new_fp)
            switched = cloud_ids(cloud, device_id)
            # Batches signed with the new key reach the cloud while the agent runs on.
            wait_for("records after the switch", lambda: len(cloud_ids(cloud, device_id)) > len(switched))
            vehicle.state = TruckState(ignition=False)  # the vehicle goes quiet: the outbox can drain
            wait_for("an empty outbox", lambda: status(d).get("outbox", {}).get("depth") == 0)
            assert agent.poll() is None, "the agent stopped"
        finally:
            stop_agent(agent)
    final = status(d)
    assert final["outbox"]["depth"] == 0, final
    assert not final.get("uplink", {}).get("quarantined_records"), final
    counters = final["counters"]
    assert counters.get("signing_key_switches") == 1, counters
    assert not counters.get("batches_rejected"), counters  # nothing refused, before or after the switch
    assert not counters.get("signing_rotation_hold_expired"), counters
    ids = cloud_ids(cloud, device_id)
    # The outbox numbers records from a clock-seeded start (a multiple of IDS_PER_MS), one by one.
    assert (ids[0] - 1) % IDS_PER_MS == 0, "the first records the agent made are missing"
    assert ids == list(range(ids[0], ids[-1] + 1)), "a hole in the record ids the cloud holds"
    engine = make_engine(cloud.db_url)
    with engine.connect() as conn:
        assert len(retired_keys(conn, device_id)) == 1
    engine.dispose()
