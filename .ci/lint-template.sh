#!/usr/bin/env bash
# Lints template.yaml, offline: `cfn-lint template.yaml` (pinned in .ci/requirements.txt) and
# `sam validate --lint` (aws-sam-cli pinned in .ci/requirements-template.txt), both run from the
# project's .venv and installed into it when missing or when a pin changed. Exits non-zero when
# either tool reports anything (cfn-lint fails on warnings too).
#
# What the linters cannot see (routes, binaries, environment variables, policies and metric
# names against the code) is checked by `cargo test -p webhook-tests --test it template`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Both files in one resolve, so aws-sam-cli never moves the cfn-lint pin.
want=$(cat .ci/requirements.txt .ci/requirements-template.txt)
stamp=.venv/.requirements-template
if [ ! -x .venv/bin/sam ] || [ ! -x .venv/bin/cfn-lint ] \
   || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check \
    -r .ci/requirements.txt -r .ci/requirements-template.txt
  printf '%s' "$want" > "$stamp"
fi

# No telemetry and no AWS account: `sam validate --lint` only needs a region name.
export SAM_CLI_TELEMETRY=0

echo "== $(.venv/bin/cfn-lint --version): cfn-lint template.yaml"
.venv/bin/cfn-lint template.yaml
echo "== $(.venv/bin/sam --version): sam validate --lint"
.venv/bin/sam validate --lint --region us-east-1 -t template.yaml
echo "template.yaml: cfn-lint and sam validate --lint passed"
