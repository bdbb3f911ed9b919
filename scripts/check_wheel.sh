#!/usr/bin/env bash
# A fresh virtual environment with only the built wheel (and its two runtime
# dependencies) runs `sessions-client demo` and imports the public API.
#
# Usage: bash scripts/check_wheel.sh
#
# Needs `build` and `wheel` (the dev extra). requests and sseclient-py are
# fetched from the package index (or pip's cache) into a local wheelhouse; the
# fresh venv then installs with --no-index from that wheelhouse only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
python=${PYTHON:-python3}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== build the wheel (no isolation) from a copy of the source tree"
mkdir -p "$tmp/src"
cp setup.cfg setup.py pyproject.toml README.md LICENSE "$tmp/src/"
[ -f CHANGELOG.md ] && cp CHANGELOG.md "$tmp/src/"
cp -r sessions_client "$tmp/src/"
find "$tmp/src" -name '__pycache__' -prune -exec rm -rf {} +
"$python" -m build --no-isolation --wheel --outdir "$tmp/dist" "$tmp/src" >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log" >&2; exit 1; }
wheel=$(ls "$tmp"/dist/*.whl)
echo "   $(basename "$wheel")"

echo "== wheelhouse: the wheel and its runtime dependencies"
"$python" -m pip wheel --quiet --wheel-dir "$tmp/wheelhouse" "$wheel"
ls "$tmp/wheelhouse"

echo "== fresh venv, installed with --no-index from the wheelhouse only"
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --no-index --find-links "$tmp/wheelhouse" "$wheel"

echo "== run it from outside the source tree"
cd "$tmp"
unset TRIGGER_API_URL TRIGGER_SECRET_KEY TRIGGER_ACCESS_TOKEN TRIGGER_PREVIEW_BRANCH
"$tmp/venv/bin/python" -c '
import sessions_client, sessions_client.testing
from sessions_client import Client, Session, FileCursor, MemoryCursor
assert sessions_client.__file__.startswith("'"$tmp"'/venv"), sessions_client.__file__
print("   imported sessions_client", sessions_client.__version__)
'
"$tmp/venv/bin/sessions-client" --version
"$tmp/venv/bin/sessions-client" demo
"$tmp/venv/bin/python" -m sessions_client --help >/dev/null
cd "$root"
echo "check_wheel: OK"
