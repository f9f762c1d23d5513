"""``fleet-cloud config push | show | reissue``: signed config pushes for operators without HTTP tooling.

The same service the API uses (``ConfigPush``): ``push`` signs and stores the device's next version and, with
``FLEET_CLOUD_CONFIG_BROKER`` set, publishes it (retained) and waits up to ``--wait`` seconds for the
broker to take it; otherwise it stays stored and the API process's publisher sends it on its next round.
``show`` prints the desired config and the version the device reports running (``GET .../config``).
``reissue`` re-issues configs due before they expire (``ConfigPush.reissue_due``), once or ``--every`` S.

Exit codes: 0 done, 1 refused (no such device, revoked, content out of bounds: the message says why), 2 a
file that cannot be read. ``push`` is appended to the audit trail before it runs, as the other admin commands.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.wire.model import DEVICE_ID_RE

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cloud_sync.config_push.service import ConfigPush
    from cloud_sync.settings import Settings

#: Default seconds ``push`` and ``reissue`` wait for the broker to take what they publish.
DEFAULT_WAIT_S = 10.0
#: Largest file ``--thresholds-file`` / ``--geofences`` reads (the sealed config is bounded far lower).
MAX_FILE_BYTES = 4 * 1024 * 1024
DAY_S = 86400.0


def _device(text: str) -> str:
    if not DEVICE_ID_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a device id ({DEVICE_ID_RE.pattern}): {text!r}")
    return text


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="signed config pushes: push, show, reissue (as the API's .../config)")
    csub = config.add_subparsers(dest="config_command", required=True)
    push = csub.add_parser("push", help="sign, store and publish a device's next config version")
    push.add_argument("--device", required=True, type=_device, help="device id")
    push.add_argument("--profile", help="firmware profile bundled with the agent (default: the device's own)")
    push.add_argument("--thresholds-file", type=Path, metavar="F",
                      help="thresholds on top of the profile's: a JSON object or TOML table of name = number")
    push.add_argument("--geofences", type=Path, metavar="F", help="a GeoJSON FeatureCollection (RFC 7946)")
    push.add_argument("--ttl-days", type=_positive, metavar="N",
                      help="days the device accepts it after issue (default 30; re-issued before it expires)")
    push.add_argument("--wait", type=_positive, default=DEFAULT_WAIT_S, metavar="S",
                      help=f"seconds to wait for the broker to take it (default {DEFAULT_WAIT_S:g})")
    push.add_argument("--json", action="store_true", help="print the device's config status as JSON")
    show = csub.add_parser("show", help="the desired config and the version the device reports running")
    show.add_argument("--device", required=True, type=_device, help="device id")
    show.add_argument("--json", action="store_true", help="print JSON (as GET /v1/vehicles/{device}/config)")
    reissue = csub.add_parser("reissue", help="re-issue configs that expire soon (the API process does it hourly)")
    reissue.add_argument("--every", type=_positive, metavar="S", help="repeat every S seconds (default: once)")
    reissue.add_argument("--wait", type=_positive, default=DEFAULT_WAIT_S, metavar="S",
                         help=f"seconds to wait for the broker to take them (default {DEFAULT_WAIT_S:g})")


class FileRefused(Exception):
    pass


def _read(path: Path) -> Any:
    """A JSON (or, for ``.toml``, TOML) document from ``path``; ``FileRefused`` says what is wrong."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise FileRefused(f"{path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise FileRefused(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(data.decode("utf-8"))
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FileRefused(f"{path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'}: {exc}") from None


def _thresholds(path: Path) -> dict[str, float]:
    doc = _read(path)
    if not isinstance(doc, dict):
        raise FileRefused(f"{path}: expected an object of threshold name -> number")
    out: dict[str, float] = {}
    for name, value in doc.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise FileRefused(f"{path}: threshold {name!r} must be a finite number, not {value!r}")
        out[str(name)] = float(value)
    return out


def status_view(push: ConfigPush, engine: Engine, device: str) -> dict[str, Any]:
    """What ``GET /v1/vehicles/{device}/config`` answers, as a plain dict (None: no such device)."""
    from cloud_sync.store.configs import latest_config, reported_status
    from cloud_sync.store.devices import get_device

    with engine.connect() as conn:
        if get_device(conn, device) is None:
            return {}
        stored, reported = latest_config(conn, device), reported_status(conn, device)
    desired = None
    if stored is not None:
        c = push.decode(stored)
        desired = {"version": c.version, "issued_at": c.issued_at, "expires_at": c.expires_at,
                   "profile": c.profile, "thresholds": dict(c.thresholds),
                   "geofences": None if c.geofences is None else dict(c.geofences),
                   "created_by": stored.created_by, "published_at": stored.published_at}
    applied = None if reported is None else {
        "applied_version": reported.applied_version, "result": reported.result,
        "offered_version": reported.offered_version, "reason": reported.reason, "reported_at": reported.device_time}
    in_sync = ((applied or {}).get("applied_version") or 0) == ((desired or {}).get("version") or 0)
    return {"device_id": device, "desired": desired, "applied": applied, "in_sync": in_sync}


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t))


def _print_status(view: dict[str, Any]) -> None:
    desired, applied = view["desired"], view["applied"]
    print(f"device   {view['device_id']}")
    if desired is None:
        print("desired  none (the device runs its agent.toml)")
    else:
        published = (f"published {_when(desired['published_at'])}" if desired["published_at"] is not None
                     else "NOT PUBLISHED yet (waiting for a broker)")
        fences = desired["geofences"]
        print(f"desired  v{desired['version']} by {desired['created_by']}, issued {_when(desired['issued_at'])}, "
              f"expires {_when(desired['expires_at'])}, {published}")
        print(f"         profile {desired['profile'] or '(the device own)'}, thresholds "
              + (", ".join(f"{k}={v:g}" for k, v in sorted(desired["thresholds"].items())) or "none")
              + f", geofences {'none' if fences is None else len(fences.get('features', []))}")
    if applied is None:
        print("applied  no report from the device yet")
    else:
        print(f"applied  v{applied['applied_version']} ({applied['result']}"
              + (f": offered v{applied['offered_version']} {applied['reason']}" if applied["reason"] else "")
              + f"), reported {_when(applied['reported_at'])}")
    print(f"in sync  {'yes' if view['in_sync'] else 'no'}")


def _publish_within(push: ConfigPush, device: str | None, wait_s: float) -> bool:
    """Publish what waits until nothing of ``device`` (None: of anyone) does, or ``wait_s`` passed."""
    from cloud_sync.store.configs import unpublished

    deadline = time.monotonic() + wait_s
    while True:
        push.publish_pending()
        with push.engine.connect() as conn:
            waiting = [s for s in unpublished(conn) if device is None or s.device_id == device]
        if not waiting or time.monotonic() >= deadline:
            return not waiting
        time.sleep(0.1)


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    from cloud_sync.config_push.service import DEFAULT_TTL_S, ConfigPush, ConfigRefused
    from cloud_sync.store import migrate

    migrate(engine)
    push = ConfigPush.from_settings(engine, settings)
    try:
        if args.config_command == "show":
            view = status_view(push, engine, args.device)
            if not view:
                print(f"fleet-cloud: no device {args.device!r}", file=sys.stderr)
                return 1
            if args.json:
                print(json.dumps(view, sort_keys=True))
            else:
                _print_status(view)
            return 0
        has_broker = settings.config_broker_address is not None
        if has_broker:
            push.start(sweeper=False)  # this command publishes itself (_publish_within)
        if args.config_command == "reissue":
            return _reissue(push, args, has_broker)
        try:
            thresholds = _thresholds(args.thresholds_file) if args.thresholds_file else None
            geofences = _read(args.geofences) if args.geofences else None
        except FileRefused as exc:
            print(f"fleet-cloud: {exc}", file=sys.stderr)
            return 2
        if geofences is not None and not isinstance(geofences, dict):
            print(f"fleet-cloud: {args.geofences}: expected a GeoJSON FeatureCollection object", file=sys.stderr)
            return 2
        from cloud_sync.governance import audit
        from cloud_sync.governance.cli import _actor

        ttl_s = DEFAULT_TTL_S if args.ttl_days is None else args.ttl_days * DAY_S
        detail = {"profile": args.profile, "thresholds": thresholds, "geofences_file": str(args.geofences or ""),
                  "ttl_s": ttl_s}
        with engine.begin() as conn:  # before it runs, as the other admin commands: a failed audit stops it
            audit.append(conn, _actor(), "admin", "cli config push", args.device, detail)
        try:
            saved = push.save(args.device, actor=_actor(), profile=args.profile, thresholds=thresholds,
                              geofences=geofences, ttl_s=ttl_s)
        except ConfigRefused as exc:
            print(f"fleet-cloud: {exc}", file=sys.stderr)
            return 1
        published = has_broker and _publish_within(push, args.device, args.wait)
        view = status_view(push, engine, args.device)
        if args.json:
            print(json.dumps(view, sort_keys=True))
            return 0
        print(f"saved config v{saved.version} for {args.device}: "
              + ("published (retained) on the broker" if published else
                 "stored, NOT published yet: " + ("the broker did not take it in time; " if has_broker else
                                                  "FLEET_CLOUD_CONFIG_BROKER is not set here; ")
                 + "the API process's publisher sends it on its next round"))
        _print_status(view)
        return 0
    finally:
        push.close()


def _reissue(push: ConfigPush, args: argparse.Namespace, has_broker: bool) -> int:
    while True:
        done = push.reissue_due()
        published = has_broker and _publish_within(push, None, args.wait)
        for s in done:
            print(f"re-issued {s.device_id} as v{s.version}, expires {_when(s.expires_at)}")
        print(f"{len(done)} config(s) re-issued" + ("" if not done else ", published" if published
                                                     else ", not all published yet"), flush=True)
        if args.every is None:
            return 0
        time.sleep(args.every)
