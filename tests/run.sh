#!/usr/bin/env bash
# Installs everything the test suite needs, then runs all of it (slow cases included).
# Usage: bash tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v etcdctl >/dev/null || ! command -v etcd >/dev/null; then
  # The real etcdctl 3.4 drives Ward in the end-to-end tests; etcd 3.4 is the reference.
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-client etcd-server >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
ruff check .
python3 tools/genproto.py --check
exec python3 -m pytest -q -p no:cacheprovider "$@"
