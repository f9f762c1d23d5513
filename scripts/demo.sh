#!/usr/bin/env bash
# The main job until the whole pipeline (broker + cloud) runs: replay the bundled captures through
# the agent's own sources, decoding, detectors and outbox, and print what it found.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
VENV=${VENV:-.venv}
out=$(mktemp -d)
echo "== heavy truck: simulated J1939 drive cycle (tests/data/sim) + a real GNSS capture (tests/data/real)"
"$VENV/bin/fleet-agent" replay --profile heavy_truck_j1939 \
  --can tests/data/sim/truck_j1939.log.gz --gnss tests/data/real/nmea/gnss_drive.nmea --db "$out/truck.db"
echo
echo "== light vehicle: simulated OBD-II session (ISO 15765-4, 11-bit)"
"$VENV/bin/fleet-agent" replay --profile light_obd2 --can tests/data/sim/van_obd2.log --db "$out/van.db"
echo
echo "outboxes kept in $out (SQLite; open with: sqlite3 $out/truck.db 'select kind, count(*) from records group by kind')"
