"""``fleet-agent run`` with an ``[uplink]`` section: NMEA on a pty in, the cloud store out, through real Mosquitto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from edge_agent.wire import generate_private_key, save_private_key
from tests.edge_agent.uplink.conftest import DEVICE, Cloud, wait_for, write_agent_config

ROOT = Path(__file__).resolve().parents[3]
NMEA = ROOT / "tests" / "data" / "real" / "nmea" / "gnss_drive.nmea"
def test_daemon_uplinks_what_it_records(tmp_path: Path, cloud: Cloud, pty: tuple[int, int]) -> None:
    master, slave = pty
    data = tmp_path / "data"
    data.mkdir()
    key = generate_private_key()
    save_private_key(key, data / "device.pem")
    cloud.register(DEVICE, key)
    cloud.start_worker()
    config = tmp_path / "agent.toml"
    write_agent_config(config, data, os.ttyname(slave), cloud.broker, extra="ack_timeout_s = 10.0\n")
    log = tmp_path / "agent.log"

    def status() -> dict:
        try:
            return json.loads((data / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    with open(log, "ab") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)],
                                stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for(lambda: bool(status().get("uplink", {}) or {}) and status()["uplink"]["connected"],
                 "the daemon's uplink to connect")
        lines = [ln.strip() for ln in NMEA.read_text(encoding="ascii", errors="replace").splitlines()
                 if ln.startswith("$")]
        os.write(master, "".join(ln + "\r\n" for ln in lines).encode("ascii"))

        def drained() -> bool:
            c = status().get("counters", {})
            return c.get("fixes", 0) > 0 and c.get("records_appended", 0) > 0 and \
                c.get("records_uplinked", 0) == c.get("records_appended") and status()["outbox"]["depth"] == 0

        wait_for(drained, "every record the daemon stored to be acked by the cloud")
        appended = status()["counters"]["records_appended"]
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    assert rc == 0, log.read_text()
    final = status()["counters"]
    stored = cloud.records()
    # Everything stored while running reached the cloud once (the final flush at stop may add a few more
    # records, which wait in the outbox for the next start).
    assert len(stored) == final["records_uplinked"] >= appended
    assert len({r.record_id for r in stored}) == len(stored)
    assert sum(1 for r in stored if r.kind == "position") > 0
    assert final["batches_committed"] >= 1 and final.get("ack_timeouts", 0) == 0
