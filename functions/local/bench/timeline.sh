#!/usr/bin/env bash
# Latency over time of one closed-loop run against webhooks-local (issue 25): the load
# generator sends Pancake `messaging` deliveries on `connections` connections for `seconds`
# and writes, per 100 ms, p50/p99/max and the WAL's size and frames (from the -shm index).
#
#   bash functions/local/bench/timeline.sh OUT.csv [seconds] [connections] [rate]
#       (default 20 16; a rate paces the run instead, see loadgen.rs)
# Plot with timeline_plot.py. SERVER_BIN=path/to/another/webhooks-local measures that binary
# instead (a before/after pair on the same machine). STRACE=1 also records the writer's and
# the checkpointer's write/fsync system calls over the run (OUT.strace), for the blocked-write
# evidence.
set -euo pipefail
out=$(realpath -m "$1")
seconds=${2:-20}
conns=${3:-16}
rate=${4:-}
cd "$(dirname "$0")/../../.."
port=${LATENCY_PORT:-3922}
cargo build --quiet --release -p webhooks-local --bin webhooks-local --example loadgen
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
LISTEN_ADDR=127.0.0.1:$port SQLITE_PATH="$work/w.db" RUST_LOG=warn \
  "${SERVER_BIN:-$bin/webhooks-local}" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 200); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
if [ "${STRACE:-0}" = 1 ]; then
  tids=$(for t in /proc/$server/task/*; do
    case "$(cat "$t/comm")" in sqlite-writer|sqlite-checkpoi*) echo "-p ${t##*/}" ;; esac
  done)
  # shellcheck disable=SC2086
  strace -f -tt -T -e trace=write,pwrite64,fsync,fdatasync,fcntl $tids -o "${out%.csv}.strace" &
  tracer=$!
  sleep 1
fi
echo "$(uptime)"
"$bin/examples/loadgen" --addr "127.0.0.1:$port" --source pancake --concurrency "$conns" \
  --seconds "$seconds" --requests 100000000 --series "$out" --watch "$work/w.db-wal" \
  ${rate:+--rate "$rate"}
if [ -n "${tracer:-}" ]; then kill "$tracer" 2>/dev/null || true; fi
cpu=""
for task in /proc/$server/task/*; do
  cpu+="$(cat "$task/comm")=$(awk '{printf "%.1f", ($14+$15)/100}' "$task/stat")s "
done
echo "server cpu: $cpu"
