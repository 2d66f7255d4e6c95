#!/usr/bin/env bash
# Runs the coverage-guided fuzz targets one after another (one libFuzzer process at a time,
# one job each), and prints per target: executions, coverage (libFuzzer's final cov / ft),
# executions per second, wall time, and crashes / timeouts / OOMs.
#
#   bash fuzz/run.sh [-r RUNS | -t SECONDS] [TARGET...]
#
#   -r RUNS      executions per target (libFuzzer -runs; default 100000)
#   -t SECONDS   time per target instead (libFuzzer -max_total_time)
#   TARGET...    default: every target (`cargo fuzz list`)
#
# Environment: FUZZ_RSS_MB (default 2048) and FUZZ_TIMEOUT (seconds per input, default 10)
# become -rss_limit_mb and -timeout; FUZZ_ARGS adds libFuzzer flags.
#
# Needs only what the repository installs: the nightly toolchain (rustup) and cargo-fuzz,
# which this script installs into fuzz/.tools on first use. Builds with
# `--sanitizer none`: the code under test is safe Rust, so AddressSanitizer would mostly
# cost throughput; overflow checks and debug assertions stay on (cargo-fuzz's default).
# Corpora grow in fuzz/corpus/<target>/ (seeded by corpus.sh), findings land in
# fuzz/artifacts/<target>/, logs in fuzz/logs/<target>.log, the table in
# fuzz/logs/summary.md. Exit status: 0 when every target finished clean.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz_dir"

limit="-runs=100000"
while getopts "r:t:h" opt; do
    case "$opt" in
        r) limit="-runs=$OPTARG" ;;
        t) limit="-max_total_time=$OPTARG" ;;
        *) sed -n '2,21p' "$fuzz_dir/run.sh"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))

rss_mb="${FUZZ_RSS_MB:-2048}"
timeout_s="${FUZZ_TIMEOUT:-10}"
cargo_fuzz=("cargo" "+nightly" "fuzz")
bin_dir="$fuzz_dir/target/x86_64-unknown-linux-gnu/release"
export PATH="$fuzz_dir/.tools/bin:$PATH"

install_cargo_fuzz() {
    if [ ! -x "$fuzz_dir/.tools/bin/cargo-fuzz" ]; then
        echo "installing cargo-fuzz into fuzz/.tools"
        cargo install --locked --root "$fuzz_dir/.tools" cargo-fuzz
    fi
}

# The last value of a libFuzzer final statistic (`stat::NAME: VALUE`).
stat() {
    grep -a "^stat::$1:" "$2" | tail -1 | awk '{print $2}'
}

# cov and ft of libFuzzer's last status line (`#N DONE cov: X ft: Y ...`, else the last
# `cov:` line before a crash).
coverage() {
    grep -aE '^#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$1" | tail -1 |
        sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+).*/\1 \2/'
}

# Artifacts of one kind (crash, timeout, oom, leak) a target has.
artifacts() {
    find "$fuzz_dir/artifacts/$1" -name "$2-*" 2>/dev/null | wc -l
}

# Runs one target; appends its row to the summary; returns libFuzzer's status.
run_target() {
    local target="$1" log="logs/$1.log" dict=() status=0
    [ -f "corpus/$target.dict" ] && dict=("-dict=corpus/$target.dict")
    local before_crash before_timeout before_oom
    before_crash=$(artifacts "$target" crash)
    before_timeout=$(artifacts "$target" timeout)
    before_oom=$(artifacts "$target" oom)
    local started ended
    started=$(date +%s.%N)
    mkdir -p "artifacts/$target"
    # The binary built above, run directly (what `cargo fuzz run` does after building), so a
    # source edit during a long run cannot trigger a rebuild between targets.
    "$bin_dir/$target" "corpus/$target" -artifact_prefix="artifacts/$target/" \
        "$limit" -rss_limit_mb="$rss_mb" -timeout="$timeout_s" -print_final_stats=1 \
        "${dict[@]}" ${FUZZ_ARGS:-} > "$log" 2>&1 || status=$?
    ended=$(date +%s.%N)
    local execs rate cov ft seconds
    execs=$(stat number_of_executed_units "$log")
    read -r cov ft <<< "$(coverage "$log")"
    seconds=$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }')
    # Over the wall time (libFuzzer's own average is an integer division by whole seconds).
    rate=$(awk -v n="${execs:-0}" -v s="$seconds" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    local crashes=$(( $(artifacts "$target" crash) - before_crash ))
    local timeouts=$(( $(artifacts "$target" timeout) - before_timeout ))
    local ooms=$(( $(artifacts "$target" oom) - before_oom ))
    printf '| %s | %s | %s | %s | %s | %s s | %s / %s / %s | %s |\n' \
        "$target" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${rate:-?}" "$seconds" \
        "$crashes" "$timeouts" "$ooms" "$status" | tee -a logs/summary.md
    return "$status"
}

main() {
    install_cargo_fuzz
    bash "$fuzz_dir/corpus.sh"
    mkdir -p logs
    local targets=("$@")
    if [ ${#targets[@]} -eq 0 ]; then
        mapfile -t targets < <("${cargo_fuzz[@]}" list)
    fi
    # Every target is built before any runs.
    for target in "${targets[@]}"; do
        "${cargo_fuzz[@]}" build --sanitizer none "$target"
    done
    {
        echo
        echo "### $(date -u +%Y-%m-%dT%H:%M:%SZ), $limit, -rss_limit_mb=$rss_mb -timeout=$timeout_s"
        echo
        echo '| target | executions | cov | ft | exec/s | time | crashes / timeouts / OOMs | exit |'
        echo '| --- | --- | --- | --- | --- | --- | --- | --- |'
    } | tee -a logs/summary.md
    local failed=0
    for target in "${targets[@]}"; do
        run_target "$target" || failed=1
    done
    return "$failed"
}

main "$@"
