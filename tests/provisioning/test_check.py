"""``fleet-provision check`` against the HIL simulators and the real cloud.

The vehicle is ``tests.provisioning.vehicle``: the HIL truck ECU or OBD-II ECUs behind an slcan adapter
emulator on a pty (frames pass only at the bus's bitrate), GNSS from the HIL receiver simulator on a
pty, and the cloud of ``cloud_rig`` (uvicorn, Mosquitto with mutual TLS from broker-config, the ingest
worker). Each test runs the real command in a subprocess on a device enrolled by the real command.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cloud_sync.store import make_engine
from cloud_sync.store.devices import revoke_device
from cloud_sync.store.schema import batches, records
from firmware_profiles import load_profile
from hil.gnss_sim import GnssSimulator, PtyGnss, Route
from hil.obd_ecu import ObdEcu, ObdVehicleState
from hil.truck_ecu import TruckEcu
from provisioning.identity import load_identity
from tests.provisioning.cloud_rig import VIN, Cloud, enrolled, provision, rewire
from tests.provisioning.vehicle import BusAdapter, Vehicle, name_bytes

DEPOT = (51.5072, -0.1276)
VAN_VIN = "WF0XXXTTGXKA12345"
FAST = ["--traffic-wait", "1", "--fix-wait", "15", "--ack-wait", "20"]


def check(d: Path, *args: str) -> tuple[int, dict[str, Any]]:
    out = provision("--json", "check", "--dir", str(d), *args)
    assert out.stdout, out.stderr
    report = json.loads(out.stdout)
    return out.returncode, {c["name"]: c for c in report["checks"]}


@pytest.fixture
def gnss() -> Iterator[PtyGnss]:
    parked = Route([DEPOT], 1.0, stops={0: 3600.0})  # standing in the depot for an hour
    receiver = PtyGnss(GnssSimulator(parked, start_utc=time.time()), rate_hz=5).start()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def truck_device(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return enrolled(cloud, tmp_path_factory.mktemp("truck") / "etc")


def truck(adapter: BusAdapter, vin: str = VIN) -> Vehicle:
    ecu = TruckEcu(load_profile("heavy_truck_j1939"), 0x00, vin=vin)
    return Vehicle(adapter, truck=ecu, claims={0x00: name_bytes(1001, 0x123, 0), 0x03: name_bytes(7, 0x45, 3)})


def test_all_pass_with_the_cloud(cloud: Cloud, truck_device: Path, gnss: PtyGnss) -> None:
    cloud.start_worker()
    device_id = load_identity(truck_device).device_id
    with truck(BusAdapter(250_000)) as vehicle:
        rewire(truck_device, vehicle.adapter.port, gnss.port)
        code, checks = check(truck_device, *FAST)
    assert code == 0, json.dumps(checks, indent=1)
    assert all(c["status"] == "pass" for c in checks.values()), checks
    assert list(checks) == ["CAN interface", "CAN traffic", "vehicle protocol", "VIN", "GNSS fix", "clock",
                            "device certificate", "broker", "test batch"]
    ecus = {e["address"] for e in checks["vehicle protocol"]["details"]["ecus"]}
    assert ecus == {0x00, 0x03}, checks["vehicle protocol"]
    assert checks["vehicle protocol"]["details"]["engine_hours"] == pytest.approx(1234.5, abs=0.05)
    assert checks["VIN"]["details"]["read"] == VIN
    assert checks["GNSS fix"]["details"]["satellites"] >= 4
    # The test batch was committed, and it left nothing in the fleet's vehicle data.
    engine = make_engine(cloud.db_url)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(records).where(records.c.device_id == device_id)
                              ).scalar()
        test_batches = conn.execute(select(batches.c.record_count).where(batches.c.device_id == device_id)).all()
    engine.dispose()
    assert stored == 0 and [tuple(b) for b in test_batches] == [(0,)]


def test_no_traffic_fails_with_the_fix(truck_device: Path) -> None:
    adapter = BusAdapter(250_000)  # a bus with nothing on it (ignition off)
    try:
        rewire(truck_device, adapter.port, None)
        code, checks = check(truck_device, "--only", "can", "--traffic-wait", "0.5")
    finally:
        adapter.close()
    assert code == 1
    assert checks["CAN interface"]["status"] == "pass"
    assert checks["CAN traffic"]["status"] == "fail"
    assert "250 kbit/s, 500 kbit/s, 1000 kbit/s" in checks["CAN traffic"]["summary"]  # every common bitrate tried
    assert "ignition" in checks["CAN traffic"]["fix"] and "pins C and D" in checks["CAN traffic"]["fix"]
    assert checks["vehicle protocol"]["status"] == checks["VIN"]["status"] == "skip"


def test_wrong_vin_fails_and_names_the_vin_read(truck_device: Path) -> None:
    other = "1XKYDP9X0MJ000001"
    with truck(BusAdapter(250_000), vin=other) as vehicle:
        rewire(truck_device, vehicle.adapter.port, None)
        out = provision("check", "--dir", str(truck_device), "--only", "can", "--traffic-wait", "1")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("[PASS] vehicle protocol: J1939: 2 ECU(s)") for line in lines), out.stdout
    vin_line = next(i for i, line in enumerate(lines) if line.startswith("[FAIL] VIN:"))
    assert other in lines[vin_line] and VIN in lines[vin_line]
    assert lines[vin_line + 1].strip().startswith("fix:") and f"--vehicle {other}" in lines[vin_line + 1]
    assert "1 of 4 checks failed (VIN)" in lines[-1]


def test_no_gnss_fails_with_the_fix(truck_device: Path) -> None:
    master, slave = os.openpty()  # a port with a silent (unplugged) receiver behind it
    try:
        rewire(truck_device, "/dev/null", os.ttyname(slave))
        code, checks = check(truck_device, "--only", "gnss", "--fix-wait", "1")
    finally:
        os.close(master)
        os.close(slave)
    assert code == 1
    assert checks["GNSS fix"]["status"] == "fail" and "no data" in checks["GNSS fix"]["summary"]
    assert "powered and wired" in checks["GNSS fix"]["fix"]


def test_obd_van_at_another_bitrate(cloud: Cloud, tmp_path: Path) -> None:
    """The bus runs at 500 kbit/s, agent.toml says 250: the check finds the rate, the OBD responders and the VIN."""
    d = enrolled(cloud, tmp_path / "etc", VAN_VIN, "light_obd2")
    profile = load_profile("light_obd2")
    running = ObdVehicleState(True, {"engine_speed": 800.0, "vehicle_speed": 0.0})
    ecus = (ObdEcu(profile, 0, vin=VAN_VIN, state=running), ObdEcu(profile, 1, pids={0x0D}, state=running))
    with Vehicle(BusAdapter(500_000), obd=ecus) as vehicle:
        rewire(d, vehicle.adapter.port, None, bitrate=250_000)
        code, checks = check(d, "--only", "can", "--traffic-wait", "1")
    assert code == 1
    traffic = checks["CAN traffic"]
    assert traffic["status"] == "fail" and "bitrate = 500000" in traffic["fix"], traffic
    protocol = checks["vehicle protocol"]
    assert protocol["status"] == "pass", protocol
    assert {e["address"] for e in protocol["details"]["ecus"]} == {0x7E8, 0x7E9}
    assert checks["VIN"]["status"] == "pass" and checks["VIN"]["details"]["read"] == VAN_VIN


def test_a_revoked_device_fails_the_test_batch_with_the_fix(cloud: Cloud, tmp_path: Path) -> None:
    """Revoked in the cloud, but the broker's CRL not regenerated yet: the broker still lets it in, the
    cloud refuses its batch, and the check says so (the installer is not told all is well)."""
    cloud.start_worker()
    d = enrolled(cloud, tmp_path / "etc")
    engine = make_engine(cloud.db_url)
    with engine.begin() as conn:
        assert revoke_device(conn, load_identity(d).device_id)
    engine.dispose()
    code, checks = check(d, "--only", "cloud", "--ack-wait", "20")
    assert code == 1
    assert checks["broker"]["status"] == "pass" and checks["clock"]["status"] == "pass"
    batch = checks["test batch"]
    assert batch["status"] == "fail" and batch["details"]["reason"] == "revoked", batch
    assert "new identity" in batch["fix"]


def test_a_running_agent_holding_the_serial_ports_is_reported(truck_device: Path) -> None:
    status = truck_device.parent / "data" / "status.json"
    status.parent.mkdir(exist_ok=True)
    status.write_text(json.dumps({"pid": os.getpid()}))  # this process stands in for a running agent
    try:
        rewire(truck_device, "/dev/null", "/dev/null")
        code, checks = check(truck_device, "--only", "can,gnss")
    finally:
        status.unlink()
    assert code == 1
    holder = checks["agent stopped"]
    assert holder["status"] == "fail" and "systemctl stop fleet-agent" in holder["fix"]
    assert checks["CAN traffic"]["status"] == checks["GNSS fix"]["status"] == "skip"
