"""The one-command demo (``fleet-hil demo``; ``make demo``): a truck and a van through the whole product.

It starts the cloud as an operator would (``hil.cloud.Cloud``: Mosquitto with mutual TLS from
``fleet-cloud broker-config``, ``fleet-cloud serve`` under uvicorn on SQLite, an ingest worker), then
two HIL rigs side by side, each enrolling its device through the real provisioning commands and
running a real ``fleet-agent`` against the simulators: the truck plays ``depot_day`` (depot idle, two
geofences, a coolant fault, a 10-minute network drop, the agent killed and restarted), the van
``van_obd`` (OBD-II, a stored misfire code, a short drive). While they run it prints what reaches
the cloud, read from the cloud's HTTP API; at the end, what the cloud learned per vehicle: trips,
idle time and fuel, geofence visits, faults and the maintenance issues they opened, batches verified.

Then it leaves the API running and says how to reach and stop it, or, with ``--exit`` (or
``FLEET_DEMO_EXIT=1``), stops everything and exits 0 when every scenario passed, 1 otherwise;
``--json`` prints the summary as one JSON object (also written to ``summary.json`` in the work dir).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from hil.can_link import RigError
from hil.cloud import Cloud
from hil.rig import HilRig, RunResult
from hil.scenario import load_scenario, resolve_scenario

#: The vehicles of the demo: device id -> bundled scenario.
VEHICLES = {"truck-01": "depot_day", "van-01": "van_obd"}
#: How often (s) the live view asks the cloud's API for new events.
LIVE_POLL_S = 1.0
#: The van's scenario has no [cloud] table of its own; its outbox gets this long (s) to drain.
DRAIN_S = 30.0
#: An event the live view sees this much (s) after it happened waited in the agent's outbox: say so.
LATE_S = 5.0
#: Event kinds the live view shows (meters, DTC status snapshots and VINs stay in the summary's counts).
LIVE_KINDS = ("trip_started", "trip_ended", "idle_started", "idle_ended", "geofence_entered", "geofence_exited",
              "dtc_appeared", "dtc_cleared", "fault_raised", "fault_cleared")
#: The maintenance module's issue list, shown when the running cloud has it.
ISSUES_PATH = "/v1/maintenance/issues"
#: A thread switch interval shorter than CPython's 5 ms: the OBD ECU answers within P2 while two rigs share us.
SWITCH_INTERVAL_S = 0.001


def describe(kind: str, p: dict[str, Any]) -> str:
    """One line for an event, as a dispatcher would read it."""
    def num(key: str, fmt: str) -> str:
        v = p.get(key)
        return format(v, fmt) if isinstance(v, int | float) else "?"

    if kind == "trip_ended":
        return f"trip ended: {num('distance_km', '.1f')} km in {num('duration_s', '.0f')} s, {num('fuel_l', '.3f')} L"
    if kind == "idle_ended":
        return f"idle ended after {num('duration_s', '.1f')} s, {num('fuel_l', '.4f')} L burnt standing"
    if kind.startswith("geofence_"):
        return f"{kind.split('_')[1]} {p.get('name') or p.get('fence_id')}"
    if kind.startswith("dtc_"):
        return f"fault {fault_name(p)} {kind.split('_')[1]}"
    if kind.startswith("fault_"):
        return f"{p.get('fault')} ({p.get('signal')} = {p.get('value')}) {kind.split('_')[1]}"
    return kind.replace("_", " ")


def fault_name(p: dict[str, Any]) -> str:
    if p.get("code"):
        return f"{p['code']} ({p.get('status', 'stored')})"
    return f"SPN {p.get('spn')} FMI {p.get('fmi')}"


def _issue_fault(issue: dict[str, Any]) -> str:
    """How a maintenance issue names its fault: an OBD-II code, a J1939 SPN/FMI, or a threshold fault's name."""
    if issue.get("code"):
        return str(issue["code"])
    if issue.get("spn") is not None:
        return f"SPN {issue['spn']} FMI {issue['fmi']}"
    return str(issue.get("fault") or issue.get("fault_key"))


class LiveView:
    """Prints each new event of the demo's devices as the cloud's API lists it."""

    def __init__(self, cloud: Cloud, devices: list[str], say: Callable[[str], None]) -> None:
        self.cloud, self.devices, self.say = cloud, devices, say
        self._seen: dict[str, set[int]] = {d: set() for d in devices}
        self._since: dict[str, float | None] = dict.fromkeys(devices)

    def poll(self) -> None:
        for device in self.devices:
            try:
                page = self.cloud.get(f"/v1/vehicles/{device}/events", limit=1000, **{"from": self._since[device]})
            except RigError:
                continue  # not enrolled yet (404), or the API is busy: the next turn catches up
            for e in page["data"]:
                if e["record_id"] in self._seen[device]:
                    continue
                self._seen[device].add(e["record_id"])
                self._since[device] = e["device_time"]
                if e["kind"] in LIVE_KINDS:
                    stamp = time.strftime("%H:%M:%S", time.localtime(e["device_time"]))
                    late = time.time() - e["device_time"]
                    held = f"  (reached the cloud {late:.0f} s after it happened)" if late > LATE_S else ""
                    self.say(f"  cloud <- {device:9} {stamp}  {describe(e['kind'], e['payload'])}{held}")


def summarize(cloud: Cloud, results: dict[str, RunResult | str]) -> dict[str, Any]:
    """What the cloud learned, per device, from its API only."""
    paths = cloud.get("/openapi.json").get("paths", {})
    vehicles = {v["device"]["id"]: v for v in cloud.get("/v1/vehicles")["data"]}
    out: dict[str, Any] = {"api": cloud.url, "vehicles": {}}
    for device, result in results.items():
        events = cloud.events(device) if device in vehicles else []
        by: dict[str, list[dict[str, Any]]] = {}
        for e in events:
            by.setdefault(e.kind, []).append(e.payload)
        trips, idles = by.get("trip_ended", []), by.get("idle_ended", [])
        faults: dict[str, dict[str, Any]] = {}
        # Trouble codes the ECUs set, and the agent's own threshold faults (coolant too hot, ...).
        for kind, first in (("dtc_appeared", True), ("dtc_cleared", False), ("fault_raised", True),
                            ("fault_cleared", False)):
            for p in by.get(kind, []):
                name = fault_name(p) if kind.startswith("dtc_") else str(p.get("fault"))
                f = faults.setdefault(name, {"fault": name, "appeared": 0, "cleared": 0})
                f["appeared" if first else "cleared"] += 1
        health = cloud.health(device) if device in vehicles else {}
        v: dict[str, Any] = {
            "vin": vehicles.get(device, {}).get("device", {}).get("vin"),
            "profile": vehicles.get(device, {}).get("device", {}).get("profile"),
            "trips": {"count": len(trips), "distance_km": _total(trips, "distance_km"),
                      "duration_s": _total(trips, "duration_s"), "fuel_l": _total(trips, "fuel_l")},
            "idle": {"count": len(idles), "duration_s": _total(idles, "duration_s"), "fuel_l": _total(idles, "fuel_l")},
            "geofence_visits": [p.get("fence_id") for p in by.get("geofence_entered", [])],
            "faults": list(faults.values()),
            "batches_verified": health.get("batches_committed", 0), "records": health.get("records_received", 0),
            "open_gaps": health.get("open_gaps"), "dropped": health.get("dropped"),
            "maintenance_issues": None,
        }
        if ISSUES_PATH in paths and device in vehicles:
            issues = cloud.get(ISSUES_PATH, device=device)["data"]
            v["maintenance_issues"] = [{"id": i["id"], "fault": _issue_fault(i),
                                        "status": i["status"],
                                        "severity": i["severity"], "occurrences": i["occurrences"]} for i in issues]
        if isinstance(result, RunResult):
            v.update(scenario=result.scenario, passed=result.passed, agent_starts=result.agent_starts,
                     network_resets=result.network_resets,
                     expectations={"passed": sum(r.passed for r in result.results), "total": len(result.results)},
                     failed=[r.expectation.describe() for r in result.results if not r.passed])
        else:
            v.update(passed=False, error=result)
        out["vehicles"][device] = v
    out["passed"] = all(v["passed"] for v in out["vehicles"].values())
    return out


def _total(items: list[dict[str, Any]], key: str) -> float:
    return round(sum(float(p[key]) for p in items if isinstance(p.get(key), int | float)), 4)


def render(summary: dict[str, Any], speedups: dict[str, float]) -> list[str]:
    lines = ["", "What the cloud learned (read back from its API):"]
    for device, v in summary["vehicles"].items():
        verdict = "PASS" if v["passed"] else "FAIL"
        head = f"  {device} ({v.get('profile')}, VIN {v.get('vin')}), scenario {v.get('scenario', '?')}: {verdict}"
        if "expectations" in v:
            head += f" ({v['expectations']['passed']}/{v['expectations']['total']} expectations)"
        lines.append(head)
        if v.get("error"):
            lines.append(f"    error: {v['error']}")
        lines += [f"    not met: {f}" for f in v.get("failed", [])]
        t, i = v["trips"], v["idle"]
        lines.append(f"    trips: {t['count']}, {t['distance_km']:.1f} km, {t['duration_s']:.0f} s, "
                     f"{t['fuel_l']:.3f} L")
        lines.append(f"    idle: {i['count']} period(s), {i['duration_s']:.1f} s, {i['fuel_l']:.4f} L")
        lines.append(f"    geofence visits: {', '.join(map(str, v['geofence_visits'])) or 'none'}")
        faults = [f"{f['fault']} (appeared {f['appeared']}, cleared {f['cleared']})" for f in v["faults"]]
        lines.append(f"    faults: {'; '.join(faults) or 'none'}")
        if v["maintenance_issues"] is not None:
            issues = [f"#{m['id']} {m['fault']}: {m['status']}, severity {m['severity']}"
                      for m in v["maintenance_issues"]]
            lines.append(f"    maintenance issues opened: {'; '.join(issues) or 'none'}")
        lines.append(f"    batches verified (Ed25519) and committed: {v['batches_verified']}, {v['records']} records, "
                     f"{v['open_gaps']} open gaps, {v['dropped']} dropped; agent started "
                     f"{v.get('agent_starts', '?')}x" + (f", uplink cut {v['network_resets']}x by the network drop"
                                                         if v.get("network_resets") else ""))
    pace = ", ".join(f"{d} x{s:g}" for d, s in speedups.items())
    lines.append(f"  (durations are the agent's, on the bus's real clock; the scenarios ran accelerated: {pace})")
    return lines


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="fleet-hil demo", description=__doc__.split("\n")[0])
    p.add_argument("--exit", action="store_true", help="stop everything and exit with a summary "
                                                       "(default: leave the API running; also FLEET_DEMO_EXIT=1)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--workdir", type=Path, help="keep the cloud store, device identities and logs here "
                                                "(default: a temporary directory)")
    return p


def run_demo(args: argparse.Namespace) -> int:
    exit_after = args.exit or os.environ.get("FLEET_DEMO_EXIT", "") not in ("", "0")
    lock = threading.Lock()
    quiet = args.json

    def say(line: str) -> None:
        if not quiet:
            with lock:
                print(line, flush=True)

    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="fleet-demo-")) if temporary else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # `kill PID` as well as Ctrl-C ends in the cleanup below (no orphaned broker, API, worker or agents).
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    cloud = Cloud(workdir / "cloud", HilRig.child_env())
    rigs: dict[str, HilRig] = {}
    try:
        say(f"== cloud: starting Mosquitto (mutual TLS), the API and an ingest worker in {workdir}")
        cloud.start()
        say(f"   broker 127.0.0.1:{cloud.broker_port}, API {cloud.url}")
        for device, name in VEHICLES.items():
            scenario = load_scenario(resolve_scenario(name))
            if scenario.cloud_drain_s is None:
                scenario = dataclasses.replace(scenario, cloud_drain_s=DRAIN_S)
            rigs[device] = HilRig(scenario, workdir / device, cloud=cloud, device_id=device,
                                  echo=_prefixed(say, f"  rig   {device:9} "))
            say(f"== {device}: {scenario.profile}, scenario {scenario.name} ({scenario.description}), "
                f"{rigs[device].plan.duration_s / scenario.speedup:.0f} s at x{scenario.speedup:g}")
        results: dict[str, RunResult | str] = {}

        def play(device: str, rig: HilRig) -> None:
            try:
                results[device] = rig.run()
            except RigError as exc:
                results[device] = f"{type(exc).__name__}: {exc}"

        threads = [threading.Thread(target=play, args=(d, r), name=f"demo-{d}", daemon=True) for d, r in rigs.items()]
        for t in threads:
            t.start()
        live = LiveView(cloud, list(rigs), say)
        while any(t.is_alive() for t in threads):
            live.poll()
            for t in threads:
                t.join(timeout=LIVE_POLL_S / len(threads))
        live.poll()
        summary = summarize(cloud, {d: results.get(d, "did not finish") for d in rigs})
        summary["wall_s"] = round(time.monotonic() - started, 1)
        summary["workdir"] = str(workdir)
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        if args.json:
            print(json.dumps(summary, sort_keys=True), flush=True)
        for line in render(summary, {d: r.scenario.speedup for d, r in rigs.items()}):
            say(line)
        say(f"  demo {'passed' if summary['passed'] else 'FAILED'} in {summary['wall_s']:.0f} s")
        if not exit_after:
            _serve_until_stopped(cloud, workdir, temporary, sys.stderr if args.json else sys.stdout)
        return 0 if summary["passed"] else 1
    except RigError as exc:
        print(f"fleet-hil demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fleet-hil demo: interrupted; stopping the agents and the cloud", file=sys.stderr)
        for rig in rigs.values():
            rig.abort()
        return 130  # 128 + SIGINT, as a shell reports it
    finally:
        cloud.close()
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _prefixed(say: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda msg: say(prefix + msg)


def _serve_until_stopped(cloud: Cloud, workdir: Path, temporary: bool, out: TextIO) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    auth = f'-H "Authorization: Bearer {cloud.admin_token}"'
    print(f"\nThe cloud API is still running at {cloud.url} (interactive docs: {cloud.url}/docs)\n"
          f"  admin token: {cloud.admin_token}\n"
          f"  try: curl {auth} {cloud.url}/v1/vehicles\n"
          f"       curl {auth} {cloud.url}/v1/vehicles/truck-01/events\n"
          f"  store and logs: {workdir}{' (removed when you stop)' if temporary else ''}\n"
          f"Stop it with Ctrl-C (or: kill {os.getpid()}).", file=out, flush=True)
    while not stop.wait(1.0):
        pass
    print("stopping the cloud ...", file=out, flush=True)
