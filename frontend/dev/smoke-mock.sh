#!/usr/bin/env bash
# Builds the UI, starts the mock gateway on a free port, runs the browser smoke test against it.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
PORT="${PORT:-8090}"
PORT="$PORT" node dev/mock-server.mjs &
MOCK=$!
trap 'kill $MOCK' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT/" node dev/smoke.mjs
