# lib.sh - helpers for the integration tests: run the diverge program and
# check its exit status, stdout and stderr.
set -u
D=${DV_DIVERGE:?DV_DIVERGE must point at the diverge program}
FX=${DV_FIXTURES:?DV_FIXTURES must point at fixtures/}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n_pass=0
n_fail=0

# expect RC DESCRIPTION -- CMD...: run CMD, compare its exit status with RC.
# stdout and stderr land in $T/out and $T/err.
expect() {
    local want=$1 what=$2
    shift 3
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then
        n_pass=$((n_pass + 1))
    else
        n_fail=$((n_fail + 1))
        echo "FAIL: $what: exit $rc, expected $want: $*"
        sed 's/^/    stderr: /' "$T/err" | head -5
    fi
    return 0
}

# ok DESCRIPTION CONDITION...: count a shell condition as a check.
ok() {
    local what=$1
    shift
    if "$@"; then n_pass=$((n_pass + 1)); else n_fail=$((n_fail + 1)); echo "FAIL: $what"; fi
}

# one_error_line FILE: stderr is exactly one line, "diverge: ..." naming FILE.
one_error_line() {
    [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q "^diverge: .*$1" "$T/err"
}

# expect_cuts_rejected FILE CUT...: `diverge info` on FILE cut to each
# length in turn exits 2 with one error line naming the cut file.
expect_cuts_rejected() {
    local src=$1 cut rc ext=${1##*.}
    shift
    for cut in "$@"; do
        head -c "$cut" "$src" >"$T/cut.$ext"
        "$D" info "$T/cut.$ext" >/dev/null 2>"$T/err"
        rc=$?
        if [ $rc -ne 2 ] || ! one_error_line "cut.$ext"; then
            n_fail=$((n_fail + 1))
            echo "FAIL: truncated at $cut: exit $rc"; head -3 "$T/err"
        else
            n_pass=$((n_pass + 1))
        fi
    done
}

finish() {
    echo "$n_pass passed, $n_fail failed"
    [ "$n_fail" -eq 0 ]
}

# poison_nan SRC DST TENSOR INDEX: DST is the GGUF file SRC with element
# INDEX of its f32 tensor TENSOR set to a quiet NaN (0x7fc00000), found
# through the offsets `diverge info` prints.
poison_nan() {
    local base off
    base=$("$D" info "$1" | sed -n 's/.*, data at \([0-9]*\)$/\1/p')
    off=$("$D" info "$1" | awk -v t="$3" '$1 == t { print $(NF - 1) }')
    [ -n "$base" ] && [ -n "$off" ] && cp "$1" "$2" &&
        printf '\000\000\300\177' | dd of="$2" bs=1 seek=$((base + off + 4 * $4)) \
            conv=notrunc status=none
}

# expect_piped RC DESCRIPTION -- CMD...: as expect, with stdout a pipe
# (through cat into $T/out), where a crash would lose buffered output.
expect_piped() {
    local want=$1 what=$2
    shift 3
    "$@" 2>"$T/err" | cat >"$T/out"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -eq "$want" ]; then
        n_pass=$((n_pass + 1))
    else
        n_fail=$((n_fail + 1))
        echo "FAIL: $what: exit $rc, expected $want: $*"
        sed 's/^/    stderr: /' "$T/err" | head -5
    fi
    return 0
}
