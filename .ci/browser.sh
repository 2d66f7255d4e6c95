#!/usr/bin/env bash
# The console's browser tests (tests/browser): a real headless Chromium, Debian's `chromium`
# package, driven by playwright-core from npm. Installs what is missing (chromium by
# apt-get, the driver by `npm ci` from the committed lock file), builds webhooks-local, and
# runs the node test script, which starts its own webhooks-local instances on loopback ports
# over temporary SQLite files and stops them. Never skips: a missing browser is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "browser tests: $chromium is missing; install Debian's chromium package (apt-get install chromium) or set CHROMIUM" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "browser tests: node and npm are required (apt-get install nodejs npm)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

lock=tests/browser/package-lock.json
stamp=tests/browser/node_modules/.installed-lock
if [ ! -d tests/browser/node_modules/playwright-core ] || ! cmp -s "$lock" "$stamp" 2>/dev/null; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  cp "$lock" "$stamp"
fi

cargo build --quiet -p webhooks-local --bin webhooks-local
target=${CARGO_TARGET_DIR:-target}
CHROMIUM="$chromium" WEBHOOKS_LOCAL="$target/debug/webhooks-local" \
  node --test tests/browser/console.test.mjs
