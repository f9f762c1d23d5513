"""Offline for a simulated 72 hours: the outbox holds its quota, drops only the lowest priority, reports
them to the cloud, and the backlog drains once the broker is back."""

from __future__ import annotations

from edge_agent.model import Priority, Record
from tests.edge_agent.uplink.conftest import DEVICE, T0, Cloud, fast_settings

HOURS = 72
POSITION_EVERY_S = 10
EVENT_EVERY_S = 30 * 60
FAULT_EVERY_S = 6 * 3600
QUOTA = 1 << 20


def minute(m: int) -> list[Record]:
    """One simulated minute: positions every 10 s, an event each half hour, a fault every six hours."""
    t = T0 + m * 60
    out = [Record("position", Priority.PERIODIC, t + s, {"n": (m * 60 + s) // POSITION_EVERY_S, "lat": 48.1,
                                                         "lon": 11.5 + m * 1e-5, "speed_mps": 20.0})
           for s in range(0, 60, POSITION_EVERY_S)]
    if (m * 60) % EVENT_EVERY_S == 0:
        out.append(Record("idle_started", Priority.EVENT, t, {"minute": m}))
    if (m * 60) % FAULT_EVERY_S == 0:
        out.append(Record("dtc_active", Priority.FAULT, t, {"minute": m, "spn": 110, "fmi": 0}))
    return out


def test_72_hours_offline_then_drain(cloud: Cloud, make_rig) -> None:
    cloud.broker.kill()  # the vehicle is out of coverage from the start
    rig = make_rig(fast_settings(cloud.broker), quota_bytes=QUOTA)
    cloud.register(DEVICE, rig.key)
    minutes = HOURS * 60
    peak = 0
    for m in range(minutes):
        rig.outbox.append(minute(m))
        peak = max(peak, rig.outbox.bytes_used())
        if m % 60 == 0:
            rig.uplink.tick()
    positions_total = minutes * 60 // POSITION_EVERY_S
    events_total, faults_total = minutes * 60 // EVENT_EVERY_S, minutes * 60 // FAULT_EVERY_S
    assert peak <= QUOTA
    assert rig.counters.get("batches_sent") == 0
    dropped = rig.counters.get("records_dropped")
    assert dropped > positions_total // 2  # the quota really bit

    cloud.broker.start()
    cloud.start_worker()
    rig.pump(lambda: rig.outbox.depth() == 0, "the backlog to drain")

    stored = cloud.records()
    by_kind: dict[str, list[dict]] = {}
    for r in stored:
        by_kind.setdefault(r.kind, []).append(r.payload)
    # Every event and fault survived; only positions were dropped, the oldest ones.
    assert len(by_kind["idle_started"]) == events_total
    assert len(by_kind["dtc_active"]) == faults_total
    reports = by_kind["drop_report"]
    assert sum(int(p["count"]) for p in reports) == dropped
    assert {k for p in reports for k in p["dropped"]} == {"position"}
    assert {p["reason"] for p in reports} == {"quota"}
    kept = sorted(p["n"] for p in by_kind["position"])
    assert len(kept) + dropped == positions_total
    assert kept == list(range(positions_total - len(kept), positions_total))
    assert rig.counters.get("records_uplinked") == len(stored)
