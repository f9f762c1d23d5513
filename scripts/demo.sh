#!/usr/bin/env bash
# The main job until the full pipeline exists: replay bundled captures through the agent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
VENV=${VENV:-.venv}
db=$(mktemp -d)/outbox.db
echo "== heavy truck (J1939) + GNSS capture -> $db"
"$VENV/bin/fleet-agent" replay --profile heavy_truck_j1939 \
  --can tests/data/sim/truck_j1939.log --gnss tests/data/real/nmea/gnss_drive.nmea --db "$db"
echo "== light vehicle (OBD-II) capture"
"$VENV/bin/fleet-agent" replay --profile light_obd2 --can tests/data/sim/van_obd2.log --db "$db.obd"
