#!/usr/bin/env bash
# The reprocess figures of BENCHMARKS.md: a SQLite store of N events written by webhooks-local
# under the loopback load generator (unique, signed fulfilment ORDER.CHANGE_STATUS events),
# then `webhooks reprocess` over all of them, timed, with its peak RSS (from /proc, sampled).
#
#   bash functions/webhooks/bench/reprocess.sh [events ...]      (default 100000)
#
# Per size it prints the events stored, the reprocess summary, events/s and peak RSS, for a
# dry run, a real run over what today's code wrote (every event unchanged), and a real run
# after the store is rolled back to what a release that ignored these events would have
# written (status ignored, no entities, transitions or queued messages; needs the sqlite3
# CLI): every event newly projected, the upgrade case and the most writes per event.
set -euo pipefail
cd "$(dirname "$0")/../../.."
sizes=("${@:-100000}")
port=${LOAD_PORT:-3901}

cargo build --quiet --release -p webhooks-local --bin webhooks-local --example loadgen
cargo build --quiet --release -p webhooks
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

# Runs "$@" and prints its wall time and peak RSS (VmHWM) sampled every 20 ms.
measure() {
  local start end pid peak=0
  start=$(date +%s.%N)
  "$@" > "$work/out.json" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${hwm:-0}" -gt "$peak" ] && peak=$hwm
    sleep 0.02
  done
  wait "$pid"
  end=$(date +%s.%N)
  scanned=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["scanned"])' "$work/out.json")
  python3 - "$start" "$end" "$scanned" "$peak" "$work/out.json" <<'PY'
import json, sys
start, end, scanned, peak, out = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = json.load(open(out))
secs = end - start
print(f"    {'dry run' if s['dryRun'] else 'real run'}: {scanned} scanned in {secs:.2f} s = {scanned / secs:,.0f} events/s, "
      f"peak RSS {peak / 1024:.1f} MiB; newly projected {s['newlyProjected']}, changed {s['changed']}, "
      f"unchanged {s['unchanged']}, queued {s['queued']}, failed {len(s['failed'])}")
PY
}

for n in "${sizes[@]}"; do
  rm -f "$work"/w.db*
  LISTEN_ADDR=127.0.0.1:$port SQLITE_PATH="$work/w.db" RUST_LOG=warn \
    target/release/webhooks-local > "$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  target/release/examples/loadgen --addr "127.0.0.1:$port" --requests "$n" --seconds 600 \
    --concurrency 64 > "$work/load.txt"
  kill "$server"; wait "$server" 2>/dev/null || true
  echo "store of $n events ($(du -h "$work/w.db" | cut -f1) file): $(tail -1 "$work/load.txt")"
  measure target/release/webhooks --db "$work/w.db" --json reprocess --dry-run
  measure target/release/webhooks --db "$work/w.db" --json reprocess
  if command -v sqlite3 > /dev/null; then
    # Then checkpointed and vacuumed: an older release's file holds no entity, transition or
    # outbox pages, where the rollback leaves them free and its deletes in the WAL.
    sqlite3 "$work/w.db" "UPDATE events SET status = 'ignored', entity_keys = '[]';
      DELETE FROM entities; DELETE FROM transitions; DELETE FROM outbox;
      PRAGMA wal_checkpoint(TRUNCATE); VACUUM;" > /dev/null
    sync  # the vacuum's rewrite of the file flushed before the clock starts
    echo "    (rolled back to an older release's store: every event ignored, nothing projected)"
    measure target/release/webhooks --db "$work/w.db" --json reprocess
  fi
done
