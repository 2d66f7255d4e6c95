#!/usr/bin/env bash
# Repeats after crashes (issue 25): webhooks-local under closed-loop load, its notifier
# posting to a counting receiver (counting_receiver.js), killed with SIGKILL `kills` times
# and restarted on the same SQLite file; after the load, the outbox drains and the script
# prints how many notifications the receiver got more than once (same `webhook-id`).
#
#   bash functions/local/bench/repeats.sh [kills] [seconds between kills] [connections]
#       (default 3 5 16)
set -euo pipefail
cd "$(dirname "$0")/../../.."
kills=${1:-3}
every=${2:-5}
conns=${3:-16}
port=${REPEATS_PORT:-3940}
rport=$((port + 1))
bench=functions/local/bench
cargo build --quiet --release -p webhooks-local --bin webhooks-local --example loadgen
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
server="" receiver="" load=""
trap 'kill $server $receiver $load 2>/dev/null; rm -rf "$work"' EXIT

node "$bench/counting_receiver.js" "$rport" > "$work/receiver.log" 2>&1 &
receiver=$!
start() {
  NOTIFY_URL=http://127.0.0.1:$rport/ NOTIFY_SECRET=whsec_c29hay1ub3RpZnktc2VjcmV0LTAxMjM0NTY3ODk= \
    LISTEN_ADDR=127.0.0.1:$port SQLITE_PATH="$work/w.db" RUST_LOG=error \
    "$bin/webhooks-local" >> "$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 200); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.05; done
}
stats() { curl -s "http://127.0.0.1:$rport/stats"; }

start
echo "$(uptime)"
seconds=$(( (kills + 1) * every ))
"$bin/examples/loadgen" --addr "127.0.0.1:$port" --source fulfilment --concurrency "$conns" \
  --seconds "$seconds" --requests 100000000 > "$work/load.txt" &
load=$!
for k in $(seq 1 "$kills"); do
  sleep "$every"
  before=$(stats)
  kill -9 "$server"
  wait "$server" 2>/dev/null || true
  echo "kill $k: receiver before the kill $before"
  start
done
wait "$load" || true
load=""
cat "$work/load.txt"
# Handed-out messages come back after the visibility timeout (30 s); then the outbox drains.
for _ in $(seq 1 120); do
  sleep 1
  left=$(sqlite3 "$work/w.db" "SELECT COUNT(*) FROM outbox WHERE dead = 0" 2>/dev/null || echo "?")
  [ "$left" = 0 ] && break
done
transitions=$(sqlite3 "$work/w.db" "SELECT COUNT(*) FROM transitions")
echo "outbox left: $left; transitions stored: $transitions; receiver: $(stats)"
