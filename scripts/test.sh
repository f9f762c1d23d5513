#!/usr/bin/env bash
# The test command (README, .ci/run): lint, type-check, the suite, then the native tests again
# with the pure-Python twins forced.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

echo "== ruff"
ruff check edge_agent cloud_sync provisioning firmware_profiles native hil tests bench
echo "== mypy"
mypy edge_agent cloud_sync provisioning firmware_profiles native hil

# Two pytest-xdist workers (the CI machine has 2 cores, and most tests wait on real processes, brokers and
# databases); loadgroup keeps tests marked with one xdist_group on one worker. PYTEST_WORKERS=0 runs in-process.
PYTEST_WORKERS=${PYTEST_WORKERS:-2}

run_pytest() {
  # pytest exits 5 when it collected nothing; that is a failure of the suite's wiring, say so.
  set +e
  python -m pytest -n "$PYTEST_WORKERS" --dist loadgroup "$@"
  rc=$?
  set -e
  if [ "$rc" = 5 ]; then
    echo "test.sh: pytest collected no tests for: $*" >&2
    return 1
  fi
  return "$rc"
}

echo "== pytest (compiled kernels)"
python -c "import native, native._j1939_ids" 2>/dev/null || {
  if [ "${CI:-}" = "true" ]; then echo "test.sh: kernels not compiled in CI" >&2; exit 1; fi
  echo "test.sh: warning: kernels not compiled; the first run uses the twins too"; }
run_pytest -q "$@"
echo "== pytest -m native (pure-Python twins, FLEET_PURE_PYTHON=1)"
FLEET_PURE_PYTHON=1 run_pytest -q -m native "$@"
