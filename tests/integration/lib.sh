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
