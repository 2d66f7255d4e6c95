#!/usr/bin/env bash
# Builds the seed corpora and dictionaries of every fuzz target from the repository's own
# samples, into fuzz/corpus/ (gitignored; libFuzzer adds what it finds there, so a later
# run continues from the grown corpus). Idempotent: seeds are rewritten, findings kept.
#
#   provider_<source>  [control prefix] ++ each shared/fixtures/<source>/*.json, under
#                      several prefixes (configuration, credential mode; see
#                      fuzz/src/provider.rs for the layout)
#   apigw_event        0x00 ++ each events/<source>/*.json (raw API Gateway v2 events),
#                      and 0x01 ++ a fixture (a structured event around that body)
#   sqs_batch          0x00 ++ each events/notifier/*.json (raw SQS events), and
#                      0x02 / 0x03 ++ small structured batches
#   version            0x00 ++ each timestamp form the providers send, 0x01 ++ as JSON,
#                      0x02 ++ pairs to compare
#
# A dictionary per provider (corpus/<target>.dict) lists the fixtures' JSON keys and short
# string values, so mutations speak the providers' vocabulary.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$fuzz_dir")"
out="$fuzz_dir/corpus"

# seed TARGET NAME PREFIX FILE: writes PREFIX (printf format) then FILE's bytes.
seed() {
    mkdir -p "$out/$1"
    { printf "$3"; cat "$4"; } > "$out/$1/seed-$2"
}

# seed_text TARGET NAME PREFIX TEXT
seed_text() {
    mkdir -p "$out/$1"
    { printf "$3"; printf '%s' "$4"; } > "$out/$1/seed-$2"
}

# Control prefixes of the provider targets: [config, credential, skew, extras].
# Local + correct; Lambda + second rotated key; unverified; correct in the other spelling;
# wrong; missing; one extra x-event-delivery header; clock 100 s late.
provider_prefixes=(
    'local:\x00\x00\x00\x00'
    'rotated:\x01\x08\x00\x00'
    'bound:\x01\x10\x00\x00'
    'unverified:\x02\x00\x00\x00'
    'variant:\x00\x05\x00\x00'
    'wrong:\x01\x06\x00\x00'
    'missing:\x00\x07\x00\x00'
    'delivery:\x00\x00\x00\x01\x1c\x049001'
    'late:\x01\x00\x0a\x00'
)

provider_seeds() {
    local source="$1" target="provider_$1"
    for fixture in "$repo/shared/fixtures/$source"/*.json; do
        local name
        name="$(basename "$fixture" .json)"
        for entry in "${provider_prefixes[@]}"; do
            seed "$target" "$name-${entry%%:*}" "${entry#*:}" "$fixture"
        done
    done
    dictionary "$target" "$repo/shared/fixtures/$source"/*.json
}

# dictionary TARGET FILES...: every JSON key, and every string value of up to 32 simple
# characters, as libFuzzer dictionary entries: once bare, once as a JSON string (quotes
# escaped, as the dictionary format wants).
dictionary() {
    local target="$1"
    shift
    {
        grep -ohE '"[A-Za-z0-9_.:+ -]{1,32}"' "$@" | sort -u | sed -E 's/^"(.*)"$/"\1"\n"\\"\1\\""/'
        printf '"%s"\n' '{' '}' '[' ']' ':' ',' 'null' 'true' 'false' '\"' '\\u0000' '1e308' '-1'
    } > "$out/$target.dict"
}

apigw_seeds() {
    local source fixture
    for source in pancake pancake-pos abaha fulfilment invoice; do
        for fixture in "$repo/events/$source"/*.json; do
            seed apigw_event "raw-$source-$(basename "$fixture" .json)" '\x00' "$fixture"
        done
    done
    seed apigw_event structured-order '\x01\x00\x03abc\x03key\x00\x00\x00\x00\x00' \
        "$repo/shared/fixtures/fulfilment/order_change_status.json"
    seed apigw_event structured-base64 '\x01\x10\x03a+b\x03k k\x03x=1\x07api/v1\x01\x00\x01\x00\x00' \
        "$repo/shared/fixtures/invoice/ready_pending.json"
}

sqs_seeds() {
    local fixture
    for fixture in "$repo/events/notifier"/*.json; do
        seed sqs_batch "raw-$(basename "$fixture" .json)" '\x00' "$fixture"
        seed sqs_batch "raw-down-$(basename "$fixture" .json)" '\x01' "$fixture"
    done
    # Structured: three records, groups shared, one unparseable body; and the same with
    # the store down.
    local batch='\x03\x03\x02\x01\x00\x02\x00\x02\x04\x04inv1\x02\x01\x02\x01\x02\x01\x01\x01\x04\x02\x03\x01\x04\x01\x02\x03\x00\x00\x02\x05hello'
    seed_text sqs_batch structured "\x02$batch" ''
    seed_text sqs_batch structured-down "\x03$batch" ''
}

version_seeds() {
    local forms=(
        '2025-09-05T10:44:52.516Z' '2022-06-07T09:55:58.000000Z' '2025-09-05T10:45:00+07:00'
        '2024-05-01T10:00:00' '2022-06-10 10:53:56' '2022-06-10 10:53:56.123'
        '1757069100' '1757069100000' '1757069100000000' '9999-12-31T23:59:59.999999Z'
    )
    local i=0 form
    for form in "${forms[@]}"; do
        seed_text version "text-$i" '\x00' "$form"
        seed_text version "json-$i" '\x01' "\"$form\""
        seed_text version "pair-$i" "\x02\x$(printf '%02x' ${#form})$form" '1970-01-01T00:00:01Z'
        i=$((i + 1))
    done
    seed_text version json-number '\x01' '1757069100'
    seed_text version json-float '\x01' '1757069100.5'
}

for source in pancake pancake_pos abaha fulfilment invoice; do
    provider_seeds "$source"
done
apigw_seeds
sqs_seeds
version_seeds
echo "seed corpora in $out: $(find "$out" -name 'seed-*' | wc -l) seeds"
