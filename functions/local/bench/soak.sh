#!/usr/bin/env bash
# The soak of issue #16: webhooks-local under sustained mixed load with a flaky notification
# receiver, sampled every 10 s, then checked (examples/soak/main.rs says what and how).
#
#   bash functions/local/bench/soak.sh [seconds] [rate] [more soak flags...]   (default 1800 500)
#   bash functions/local/bench/soak.sh 60                                       # a smoke run
#
# Output in $SOAK_OUT (default target/soak/<UTC time>): soak.csv (one line per sample),
# summary.txt (the checks, the metric table, the RSS/fd slopes), server.log (the gateway's
# WARN and up), soak.png (the plot). Exits 1 when a check failed.
#
# The plot needs matplotlib in the repository's .venv (made by .ci/test.sh):
#   .venv/bin/pip install matplotlib
# Without it the run still completes; plot later with
#   .venv/bin/python functions/local/bench/soak_plot.py OUT/soak.csv OUT/soak.png
#
# Loopback only (the gateway on 127.0.0.1:${SOAK_PORT:-3910}, the receiver on an ephemeral
# 127.0.0.1 port); bounded by the run time plus at most --drain-secs (300) of draining.
# The SQLite file (hundreds of MB after 30 minutes) is deleted unless SOAK_KEEP_DB=1.
set -euo pipefail
cd "$(dirname "$0")/../../.."
seconds=${1:-1800}
rate=${2:-500}
shift $(( $# < 2 ? $# : 2 ))
target=${CARGO_TARGET_DIR:-target}
out=${SOAK_OUT:-$target/soak/$(date -u +%Y%m%dT%H%M%SZ)}

cargo build --quiet --release -p webhooks-local --bin webhooks-local --example soak
mkdir -p "$out"
# A copy of the binary under test: the target directory may be rebuilt during a long run.
cp "$target/release/webhooks-local" "$out/webhooks-local"
echo "soak: $seconds s at $rate req/s; output in $out; load average $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
"$target/release/examples/soak" --server "$out/webhooks-local" --out "$out" \
  --port "${SOAK_PORT:-3910}" --seconds "$seconds" --rate "$rate" "$@" || status=$?
rm -f "$out/webhooks-local"
[ "${SOAK_KEEP_DB:-0}" = 1 ] || rm -f "$out"/soak.db "$out"/soak.db-wal "$out"/soak.db-shm

if [ -x .venv/bin/python ] && .venv/bin/python -c 'import matplotlib' 2> /dev/null; then
  .venv/bin/python functions/local/bench/soak_plot.py "$out/soak.csv" "$out/soak.png"
else
  echo "soak: no matplotlib in .venv, no plot (.venv/bin/pip install matplotlib)"
fi
exit "$status"
