"""``fleet-hil``: run HIL scenarios against a real ``fleet-agent`` process.

``fleet-hil run SCENARIO`` plays a scenario (a bundled name or a TOML path) and prints pass/fail per
expectation; ``--json`` prints one JSON object for CI. ``fleet-hil list`` shows the bundled scenarios,
``fleet-hil check SCENARIO`` validates one and prints its timeline without running anything.
``fleet-hil demo`` is the one-command demo of the whole product (``hil.demo``).

Exit codes: 0 every expectation passed; 1 some failed (or the agent did not stop cleanly); 2 the
scenario or the command line is invalid, or the rig could not run; 77 skipped (the CAN interface
asked for does not exist here; 77 is the "skipped" status of automake and meson test harnesses).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from hil.can_link import INTERFACES, RigError, RigSkip
from hil.scenario import ScenarioError, bundled_scenarios, load_scenario, resolve_scenario

EXIT_FAILED, EXIT_INVALID, EXIT_SKIPPED = 1, 2, 77


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet-hil", description="Hardware-in-the-loop scenarios for fleet-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and check its expectations")
    run.add_argument("scenario", help="bundled scenario name (see `fleet-hil list`) or a scenario .toml")
    run.add_argument("--json", action="store_true", help="print one JSON object (for CI)")
    run.add_argument("--can-interface", choices=INTERFACES, default="slcan",
                     help="slcan: emulated adapter on a pty (default, works everywhere); socketcan: a real or "
                          "vcan interface; virtual: refused (in-process only)")
    run.add_argument("--can-channel", help="socketcan interface name (default vcan0)")
    run.add_argument("--workdir", type=Path, help="keep agent.toml, agent.log and the outbox here "
                                                  "(default: a temporary directory, removed afterwards)")
    from hil.demo import build_parser as demo_parser

    demo_parser(sub.add_parser("demo", help="the whole product: cloud, two enrolled vehicles, what the cloud learned"))
    sub.add_parser("list", help="list the bundled scenarios")
    chk = sub.add_parser("check", help="validate a scenario and print its timeline")
    chk.add_argument("scenario")
    return parser


def _run(args: argparse.Namespace) -> int:
    from hil.rig import HilRig

    try:
        scenario = load_scenario(resolve_scenario(args.scenario))
    except ScenarioError as exc:
        print(f"fleet-hil: {exc}", file=sys.stderr)
        return EXIT_INVALID
    echo = None if args.json else (lambda msg: print(f"  .. {msg}", flush=True))
    with tempfile.TemporaryDirectory(prefix="fleet-hil-") as tmp:
        workdir = args.workdir or Path(tmp)
        try:
            rig = HilRig(scenario, workdir, can_interface=args.can_interface, can_channel=args.can_channel, echo=echo)
            if echo:
                echo(f"scenario {scenario.name}: {rig.plan.duration_s:.0f} s at x{scenario.speedup:g} "
                     f"= {rig.plan.duration_s / scenario.speedup:.1f} s wall")
            result = rig.run()
        except RigSkip as exc:
            _say(args.json, {"scenario": scenario.name, "skipped": str(exc)}, f"SKIP {scenario.name}: {exc}")
            return EXIT_SKIPPED
        except (RigError, ScenarioError) as exc:
            _say(args.json, {"scenario": scenario.name, "error": str(exc)}, f"ERROR {scenario.name}: {exc}")
            return EXIT_INVALID
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=True))
    else:
        for r in result.results:
            mark = "PASS" if r.passed else "FAIL"
            print(f"{mark}  {r.expectation.describe()}: found {r.count}")
            if not r.passed and r.seen:
                print(f"      seen: {json.dumps(list(r.seen))[:300]}")
        if result.agent_exit != 0:
            print(f"FAIL  agent exited with {result.agent_exit} on SIGTERM\n{result.log_tail}")
        verdict = "passed" if result.passed else "FAILED"
        print(f"{scenario.name}: {verdict} ({sum(r.passed for r in result.results)}/{len(result.results)}) in "
              f"{result.wall_s:.1f} s; {result.frames_sent} frames, {result.nmea_epochs} NMEA epochs, "
              f"{result.agent_starts} agent starts")
    return 0 if result.passed else EXIT_FAILED


def _say(as_json: bool, obj: dict[str, object], text: str) -> None:
    print(json.dumps(obj, sort_keys=True) if as_json else text)


def _list() -> int:
    for name, path in bundled_scenarios().items():
        try:
            s = load_scenario(path)
            print(f"{name:24} {s.profile:18} {s.description}")
        except ScenarioError as exc:
            print(f"{name:24} INVALID: {exc}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from hil.scenario_plan import Plan

    try:
        scenario = load_scenario(resolve_scenario(args.scenario))
        plan = Plan(scenario)
    except ScenarioError as exc:
        print(f"fleet-hil: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"{scenario.name}: {scenario.profile}, {plan.duration_s:.0f} scenario s at x{scenario.speedup:g} "
          f"= {plan.duration_s / scenario.speedup:.1f} s wall")
    for a, b in plan.ignition:
        print(f"  ignition on {a:8.1f} .. {b:8.1f}")
    for c in plan.codes:
        what = f"SPN {c.spn} FMI {c.fmi}" if c.code is None else f"{c.code} ({c.status})"
        print(f"  dtc {what}: {c.start:8.1f} .. {c.end:8.1f}")
    for a, b in plan.gnss_lost:
        print(f"  gnss lost   {a:8.1f} .. {b:8.1f}")
    for a, b in plan.network_drops:
        print(f"  network down {a:7.1f} .. {b:8.1f}")
    for k in plan.kills:
        print(f"  kill agent  {k.at:8.1f} (down {k.down_s:g} s)")
    for e in scenario.expectations:
        print(f"  expect {e.describe()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "list":
        return _list()
    if args.command == "demo":
        from hil.demo import run_demo

        return run_demo(args)
    return _check(args)


if __name__ == "__main__":
    raise SystemExit(main())
