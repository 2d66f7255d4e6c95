#!/usr/bin/env bash
# The README's test command: sets up everything the tests need on a fresh machine, then
# runs the whole workspace test suite.
#   - a Python venv (.venv) with the pinned tools of .ci/requirements.txt (moto, cfn-lint)
#   - moto_server on a loopback port for the DynamoDB/SQS tests (stopped on exit)
#   - the template linters (cfn-lint, sam validate --lint) via .ci/lint-template.sh
#   - no test function over 100 lines (.ci/long-tests.py)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import moto, cfnlint' 2>/dev/null \
   || ! cmp -s .ci/requirements.txt .venv/.requirements 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements.txt
  cp .ci/requirements.txt .venv/.requirements
fi

bash .ci/lint-template.sh
python3 .ci/long-tests.py

port=${MOTO_PORT:-$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
.venv/bin/moto_server -H 127.0.0.1 -p "$port" > "${TMPDIR:-/tmp}/moto-$port.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; wait $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

export MOTO_ENDPOINT="http://127.0.0.1:$port"
export MOTO_SERVER_BIN="$root/.venv/bin/moto_server"
export CFN_LINT_BIN="$root/.venv/bin/cfn-lint"
cargo test --workspace --all-targets "$@"
# The console in a real browser (installs Chromium and the driver if missing).
bash .ci/browser.sh
