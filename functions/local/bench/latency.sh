#!/usr/bin/env bash
# Issue 25's side-by-side latency runs (BENCHMARKS.md "Tail latency"): webhooks-local and a
# do-nothing Express handler, interleaved in one script so the machine's noise hits both.
#
#   bash functions/local/bench/latency.sh [runs] [seconds] [connections]   (default 3 10 16)
#
# 1. Closed loop: wrk, one thread, `connections` keep-alive connections, `seconds` per run,
#    every request a new Pancake `messaging` delivery (pancake.lua); the two servers
#    alternate which goes first. Each webhooks-local run starts on a new SQLite file.
# 2. Fixed rate: the load generator paced (`loadgen --rate`) at 50 % and 80 % of each
#    server's median closed-loop rate, timed from when each request was due (no
#    coordinated omission); p50, p99, p99.9 and max.
# Every measurement line is preceded by `uptime`. It installs what it needs: wrk (apt) and
# Express (npm, into a scratch folder). SQLITE_SYNC and other variables pass through.
# BEFORE_BIN=path/to/an/older/webhooks-local adds it as a third server ("before"),
# interleaved with the other two, for a before/after comparison on the same machine.
# NO_BUILD=1 measures the binaries already built.
set -euo pipefail
cd "$(dirname "$0")/../../.."
runs=${1:-3}
seconds=${2:-10}
conns=${3:-16}
port_local=${LATENCY_PORT:-3920}
port_node=$((port_local + 1))
bench=functions/local/bench

command -v wrk > /dev/null || apt-get install -y -qq wrk > /dev/null
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
npm install --silent --no-audit --no-fund --prefix "$work/node" express@5 > /dev/null
[ -n "${NO_BUILD:-}" ] || cargo build --quiet --release -p webhooks-local --bin webhooks-local --example loadgen
bin=${CARGO_TARGET_DIR:-target}/release

wait_port() {
  for _ in $(seq 1 200); do
    (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  return 1
}

servers="express local${BEFORE_BIN:+ before}"

# start NAME: starts the server NAME (express|local|before) and sets $server and $port.
start() {
  if [ "$1" != express ]; then
    local exe="$bin/webhooks-local"
    [ "$1" = before ] && exe=$BEFORE_BIN
    rm -rf "$work/db" && mkdir -p "$work/db"
    LISTEN_ADDR=127.0.0.1:$port_local SQLITE_PATH="$work/db/w.db" RUST_LOG=warn \
      "$exe" > "$work/$1.log" 2>&1 &
    server=$! port=$port_local
  else
    NODE_PATH="$work/node/node_modules" node "$bench/do_nothing.js" "$port_node" \
      > "$work/node.log" 2>&1 &
    server=$! port=$port_node
  fi
  wait_port "$port"
}

stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
  sleep 2
}

declare -A rates
closed() {
  start "$1"
  echo "  $(uptime)"
  line=$(wrk -t1 -c"$conns" -d"${seconds}s" -s "$bench/pancake.lua" "http://127.0.0.1:$port" | grep '^RESULT')
  echo "closed $1 run $2: ${line#RESULT }"
  rates[$1]+="$(echo "$line" | sed 's/.* rps=\([0-9]*\).*/\1/') "
  stop
}

paced() {
  start "$1"
  echo "  $(uptime)"
  line=$("$bin/examples/loadgen" --addr "127.0.0.1:$port" --source pancake --rate "$3" \
    --concurrency "$conns" --seconds "$seconds" --requests 100000000)
  echo "paced $1 at $2% ($3/s): $line"
  stop
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== closed loop: wrk -t1 -c$conns -d${seconds}s, $runs runs each, interleaved"
for run in $(seq 1 "$runs"); do
  order=$servers
  [ $((run % 2)) -eq 0 ] && order=$(echo "$servers" | tr ' ' '\n' | tac | tr '\n' ' ')
  for name in $order; do closed "$name" "$run"; done
done
for name in $servers; do
  peak=$(echo "${rates[$name]}" | median)
  echo "median closed-loop rate $name: $peak/s"
  eval "peak_$name=$peak"
done

echo "== fixed rate: loadgen --rate, $conns connections, ${seconds}s, 50 % and 80 % of each one's median"
for pct in 50 80; do
  for name in $servers; do
    eval "peak=\$peak_$name"
    paced "$name" "$pct" $((peak * pct / 100))
  done
done
