#!/usr/bin/env bash
# The soak benchmark (README "Soak"): 1,000 selftest jobs, 4 worker
# processes, a random worker SIGKILLed every 2-5 s for 10 minutes; on
# PostgreSQL the server stopped and restarted twice in the middle; the same
# on SQLite without the restarts. The jobs that failed (a task killed in
# each of its 3 attempts) are then retried, as an operator would, and every
# job must have succeeded exactly once with complete metrics. Takes 25-40
# minutes on 2 cores.
#
#   bash bench/soak.sh                      # both databases, the defaults
#   SOAK_DBS=sqlite SOAK_JOBS=200 SOAK_MINUTES=3 bash bench/soak.sh
#
# Knobs (environment): SOAK_DBS ("postgres sqlite"), SOAK_JOBS (1000),
# SOAK_WORKERS (4), SOAK_MINUTES (10), SOAK_KILL_MIN/SOAK_KILL_MAX seconds
# (2/5), SOAK_DOWN seconds the server stays down (20), SOAK_SETS job
# parameters ("preset=demo": 5 epochs of 100 steps), SOAK_LEASE (30s, the default lease),
# SOAK_OUT (bin/soak: worker logs and the table rows).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT=simd GODEBUG=${GODEBUG:-cpu.fma=off} GOMLX_NO_AUTO_INSTALL=1
export SOAK_OUT=$(mkdir -p "${SOAK_OUT:-bin/soak}" && cd "${SOAK_OUT:-bin/soak}" && pwd)
rm -f "$SOAK_OUT"/soak-*.md "$SOAK_OUT"/soak-*-worker*.log
echo "soak: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
go test -tags soak -run '^TestSoak$' -v -count=1 -timeout 4h ./cmd/dl4img 2>&1 | tee "$SOAK_OUT/soak.log" | grep -v '^=== '
echo
echo "| database | jobs | workers | SIGKILLs | server restarts | all done after | jobs/min | re-claims | done within the kills | retried by hand | check | load avg (1/5/15 min) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
cat "$SOAK_OUT"/soak-*.md
