#!/usr/bin/env bash
# Load runs of BENCHMARKS.md: webhooks-local on a fresh SQLite file per run, the loopback
# load generator (examples/loadgen.rs) against it, one result line per run.
#
#   bash functions/local/bench/load.sh [runs] [seconds] [concurrency]    (default 5 20 64)
#
# Per run it prints the generator's line (requests/s, p50/p90/p99/max), the server's CPU
# seconds per thread, and, when the sqlite3 CLI is installed, how many of the run's
# transitions the notifier worker had already delivered when the run ended.
set -euo pipefail
cd "$(dirname "$0")/../../.."
runs=${1:-5}
seconds=${2:-20}
concurrency=${3:-64}
port=${LOAD_PORT:-3900}

cargo build --quiet --release -p webhooks-local --bin webhooks-local --example loadgen
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

for run in $(seq 1 "$runs"); do
  rm -f "$work"/w.db*
  LISTEN_ADDR=127.0.0.1:$port SQLITE_PATH="$work/w.db" RUST_LOG=warn \
    target/release/webhooks-local > "$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  echo "run $run/$runs: load average $(cut -d' ' -f1-3 /proc/loadavg)"
  read -r _ u0 n0 s0 i0 w0 q0 sq0 st0 _ < /proc/stat
  target/release/examples/loadgen --addr "127.0.0.1:$port" --requests 10000000 \
    --seconds "$seconds" --concurrency "$concurrency"
  read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ < /proc/stat
  total=$(( (u1+n1+s1+i1+w1+q1+sq1+st1) - (u0+n0+s0+i0+w0+q0+sq0+st0) ))
  echo "  machine: idle $(( 100 * (i1 - i0) / total ))%, iowait $(( 100 * (w1 - w0) / total ))%, steal $(( 100 * (st1 - st0) / total ))%"
  cpu=""
  for task in /proc/$server/task/*; do
    cpu+="$(cat "$task/comm")=$(awk '{printf "%.1f", ($14+$15)/100}' "$task/stat")s "
  done
  echo "  server cpu: $cpu"
  if command -v sqlite3 > /dev/null; then
    echo "  events $(sqlite3 "$work/w.db" 'SELECT COUNT(*) FROM events'), delivered during the run $(sqlite3 "$work/w.db" 'SELECT COUNT(*) FROM transitions WHERE published = 1')"
  fi
  kill "$server"
  wait "$server" 2>/dev/null || true
  sleep 5
done
