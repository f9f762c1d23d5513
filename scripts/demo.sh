#!/usr/bin/env bash
# The main job in one command on a fresh machine: build what is needed (scripts/bootstrap.sh), then
# `fleet-hil demo` (hil/demo.py): Mosquitto with mutual TLS and the cloud API on free loopback ports, a
# truck and a van enrolled through the real provisioning commands, real agents driven by the simulators
# through their scenarios, and what the cloud learned. The API stays up afterwards (Ctrl-C stops it).
# Arguments go to `fleet-hil demo`: --exit (or FLEET_DEMO_EXIT=1) ends with the summary; --json; --workdir DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
VENV=${VENV:-.venv}
exec "$VENV/bin/fleet-hil" demo "$@"
