#!/usr/bin/env bash
# run.sh - one harness of the "fuzz" test suite (meson test --suite fuzz):
# replay every regression input once, then fuzz a copy of the seed corpus
# for a bounded time. Fails on any crash, leak, timeout, out-of-memory or
# sanitizer report; the input that did it is kept in ARTIFACTS.
# Usage: run.sh HARNESS NAME CORPUS_DIR REGRESS_DIR SECONDS ARTIFACTS_DIR [TIMEOUT]
set -uo pipefail
bin=$1 name=$2 corpus=$3 regress=$4 seconds=$5 artifacts=$6 timeout=${7:-10}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/dv-fuzz-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$artifacts"
# the committed corpus stays as it is: libFuzzer adds to its first directory
[ -d "$corpus" ] && cp -r "$corpus/." "$work/corpus/"
# -timeout: a single input taking longer (10 s; meson.build says which
# harness needs more) is a hang; -rss_limit_mb also caps one malloc
# (-malloc_limit_mb defaults to it): 2 GiB from a small file is a missing
# size check
opts=(-timeout="$timeout" -rss_limit_mb=2048 -print_final_stats=1 "-artifact_prefix=$work/")
[ -f "$here/$name.dict" ] && opts+=("-dict=$here/$name.dict")

fail() {
    echo "fuzz_$name: $1"
    tail -n 60 "$work/log"
    for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*; do
        [ -e "$f" ] || continue
        cp "$f" "$artifacts/"
        echo "fuzz_$name: kept $artifacts/$(basename "$f")"
    done
    exit 1
}

# 1. the inputs that once broke it (files, not a directory: libFuzzer
#    then runs each once and stops)
shopt -s nullglob
inputs=("$regress"/*)
if [ ${#inputs[@]} -gt 0 ]; then
    "$bin" "${opts[@]}" "${inputs[@]}" >"$work/log" 2>&1 ||
        fail "a regression input fails again"
    echo "fuzz_$name: ${#inputs[@]} regression inputs pass"
fi

# 2. fuzz for $seconds
"$bin" "${opts[@]}" -max_total_time="$seconds" "$work/corpus" >"$work/log" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "libFuzzer exited with $rc"
# belts and braces: a report that did not stop the run still fails it
grep -Eq 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:|fuzz invariant:' \
    "$work/log" && fail "a sanitizer report or broken invariant in the log"
ls "$work" | grep -Eq '^(crash|leak|timeout|oom)-' && fail "libFuzzer left an artifact"
# the summary: libFuzzer's last status line and final stats
last=$(grep -E '^#[0-9]+' "$work/log" | tail -n 1)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
echo "fuzz_$name: ${seconds}s, $execs execs ($rate/s), corpus $(ls "$work/corpus" | wc -l) files: $last"
grep -E '^fuzz_' "$work/log" || true
exit 0
