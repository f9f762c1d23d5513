#!/usr/bin/env bash
# Make a fresh machine ready: virtual environment, packages, Cython kernels, Mosquitto.
# Idempotent and quick when nothing changed (a stamp file keyed on pyproject.toml/setup.py/*.pyx).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "bootstrap: $PY not found; install Python 3.11+ first" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PY" -m venv "$VENV"
fi

stamp="$VENV/.installed"
key=$(cat pyproject.toml setup.py native/*.pyx 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$key" ] || ! ls native/_*.so >/dev/null 2>&1; then
  echo "bootstrap: installing packages and building kernels"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  FLEET_SKIP_NATIVE=1 "$VENV/bin/python" -m pip install -q -e ".[cloud,dev,bench]"
  # Editable installs build extensions in place only with build_ext --inplace.
  # CI must test the compiled kernels: there a failed build is an error, not a fallback.
  require=0; [ "${CI:-}" = "true" ] && require=1
  FLEET_REQUIRE_NATIVE=${FLEET_REQUIRE_NATIVE:-$require} "$VENV/bin/python" setup.py -q build_ext --inplace -j 2
  echo "$key" >"$stamp"
fi

# Mosquitto: the broker the sync tests and the demo start on a free port.
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing mosquitto from the system packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
  else
    echo "bootstrap: mosquitto not found; install it (apt-get install mosquitto) for the sync tests" >&2
  fi
fi
