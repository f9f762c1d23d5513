"""The cloud half of a HIL run or the demo: Mosquitto, the cloud API, an ingest worker, and enrolment.

``Cloud.start`` does what an operator does on a fresh host, with the product's own commands:
``fleet-cloud broker-config`` (the fleet CA, the broker's mutual-TLS listener and per-device ACL,
the ingest service's certificate) on a free loopback port, Mosquitto on that configuration,
``fleet-cloud serve`` (uvicorn, SQLite store, a fresh admin token) on another free port, and one
``cloud_sync.worker`` on its ingest certificate. ``Cloud.enroll`` then provisions a device the way an
installer does: an installer token from the admin API (``POST /v1/installer-tokens``), then
``fleet-provision init`` and ``fleet-provision enroll`` into the device's own directory; what comes
back is the ``[uplink]`` table the enrolment wrote (keys, certificate, CA).

What the cloud learned is read back through its HTTP API only (``events``, ``health``, ``get``), as
fleet staff would: the rig's expectations and the demo's summary never open the store themselves.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hil.can_link import RigError, RigSkip
from hil.expect import StoredEvent

#: Longest wait for Mosquitto, the API and the worker to be ready (they start together).
READY_TIMEOUT_S = 30.0
#: Longest a provisioning command or an API call may take.
COMMAND_TIMEOUT_S = 60.0
#: Installer tokens the rig asks for live this long (s): enough for one enrolment.
TOKEN_TTL_S = 900.0
#: Events read per API page (the API's own maximum is ``cloud_sync.store.queries.MAX_PAGE``).
PAGE = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str:
    for candidate in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RigSkip("cloud: mosquitto is not installed (apt-get install mosquitto; scripts/bootstrap.sh does it)")


class Cloud:
    """Broker + API + worker under ``directory``; one per run, shared by every rig of a demo."""

    def __init__(self, directory: Path, env: dict[str, str], *, echo: Callable[[str], None] | None = None) -> None:
        self.dir = directory
        self.db = directory / "cloud.db"
        self.database_url = f"sqlite:///{self.db}"
        self.broker_port = free_port()
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.admin_token = secrets.token_urlsafe(24)
        self.env = {**env, "FLEET_CLOUD_DATABASE_URL": self.database_url, "FLEET_CLOUD_ADMIN_TOKEN": self.admin_token,
                    "FLEET_CLOUD_CA_DIR": str(directory / "ca"), "FLEET_CLOUD_BROKER_HOST": "127.0.0.1",
                    "FLEET_CLOUD_BROKER_PORT": str(self.broker_port)}
        self._echo = echo or (lambda _msg: None)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- processes ----------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with open(self.dir / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.dir)
        self._procs[name] = proc
        return proc

    def _run(self, module: str, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=self.env,
                             cwd=self.dir, timeout=COMMAND_TIMEOUT_S)
        if out.returncode != 0:
            raise RigError(f"{module} {args[0] if args else ''} failed ({out.returncode}): "
                           f"{(out.stderr or out.stdout).strip()}")
        return out.stdout

    def start(self) -> None:
        mosquitto = find_mosquitto()
        self.dir.mkdir(parents=True, exist_ok=True)
        broker = self.dir / "broker"
        # As root, Mosquitto would drop to user "mosquitto", who cannot read our key files.
        self._run("cloud_sync.cli", "broker-config", "--out", str(broker), "--port", str(self.broker_port),
                  "--bind", "127.0.0.1", "--user", pwd.getpwuid(os.getuid()).pw_name)
        self._spawn("mosquitto", [mosquitto, "-c", str(broker / "mosquitto.conf")])
        self._spawn("api", [sys.executable, "-m", "cloud_sync.cli", "serve", "--port", str(self.api_port)])
        self._spawn("worker", [sys.executable, "-m", "cloud_sync.worker", "--broker", f"127.0.0.1:{self.broker_port}",
                               "--database", self.database_url, "--client-id", "hil-ingest", "--log-level", "WARNING",
                               "--tls-ca", str(broker / "ca.pem"), "--tls-cert", str(broker / "ingest.crt"),
                               "--tls-key", str(broker / "ingest.key")])
        end = time.monotonic() + READY_TIMEOUT_S
        waiting = {"mosquitto": self._broker_up, "api": self._api_up, "worker": self._worker_up}
        while waiting:
            for name, ready in list(waiting.items()):
                proc = self._procs[name]
                if proc.poll() is not None:
                    raise RigError(f"cloud: {name} exited with {proc.returncode}: {self._tail(name)}")
                if ready():
                    del waiting[name]
            if waiting and time.monotonic() > end:
                raise RigError(f"cloud: {', '.join(waiting)} not ready in {READY_TIMEOUT_S} s "
                               f"(logs in {self.dir})")
            time.sleep(0.05)

    def _broker_up(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.broker_port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def _api_up(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1.0):
                return True
        except OSError:
            return False

    def _worker_up(self) -> bool:
        try:
            return '"subscribed"' in (self.dir / "worker.log").read_text(errors="replace")
        except OSError:
            return False

    def _tail(self, name: str, lines: int = 5) -> str:
        try:
            return " | ".join((self.dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        for name in ("worker", "api", "mosquitto"):  # consumers first, the broker last
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # -- provisioning -------------------------------------------------------------------------------

    def enroll(self, device_id: str, identity_dir: Path, vin: str, profile: str, data_dir: Path, *,
               can: tuple[str, str], gnss_port: str, depot: str = "hil-depot") -> dict[str, Any]:
        """Provision a device through the real commands, telling them the sources it is wired to (the
        enrolment checks the agent would accept its configuration); returns the ``[uplink]`` table."""
        token = self.post("/v1/installer-tokens", {"depot": depot, "ttl_s": TOKEN_TTL_S})["token"]
        self._run("provisioning.cli", "--json", "init", "--dir", str(identity_dir), "--device-id", device_id)
        self._run("provisioning.cli", "--json", "enroll", "--dir", str(identity_dir), "--cloud", self.url,
                  "--token", token, "--vehicle", vin, "--profile", profile, "--data-dir", str(data_dir),
                  "--can-interface", can[0], "--can-channel", can[1], "--gnss-port", gnss_port)
        config = tomllib.loads((identity_dir / "agent.toml").read_text(encoding="utf-8"))
        uplink = config.get("uplink")
        if not isinstance(uplink, dict):
            raise RigError(f"{identity_dir / 'agent.toml'}: the enrolment wrote no [uplink] table")
        return uplink

    # -- the API ------------------------------------------------------------------------------------

    def _request(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, headers=headers,
                                         method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=COMMAND_TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RigError(f"cloud API {path}: HTTP {exc.code}: {exc.read()[:300]!r}") from None
        except OSError as exc:
            raise RigError(f"cloud API {path}: {exc}") from None

    def get(self, path: str, **params: object) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self._request(path + (f"?{query}" if query else ""))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request(path, body)

    def events(self, device_id: str, kinds: Iterable[str] | None = None) -> list[StoredEvent]:
        """Every event the cloud holds for the device (of ``kinds``), in device-time order, page by page."""
        wanted = None if kinds is None else set(kinds)
        out: list[StoredEvent] = []
        cursor = None
        while True:
            page = self.get(f"/v1/vehicles/{device_id}/events", limit=PAGE, cursor=cursor)
            for e in page["data"]:
                if wanted is None or e["kind"] in wanted:
                    payload = e["payload"]
                    out.append(StoredEvent(e["kind"], float(e["device_time"]),
                                           payload if isinstance(payload, dict) else {"_value": payload}))
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def health(self, device_id: str) -> dict[str, Any]:
        """``GET /v1/vehicles/{device}/health``, plus ``open_gaps`` as a count and ``dropped`` summed."""
        h: dict[str, Any] = self.get(f"/v1/vehicles/{device_id}/health")
        h["open_gap_ranges"] = h["open_gaps"]
        h["open_gaps"] = len(h["open_gaps"])
        h["dropped"] = sum(h.get("dropped_by_kind", {}).values())
        return h
