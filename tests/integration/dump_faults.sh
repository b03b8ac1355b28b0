#!/usr/bin/env bash
# dump_faults.sh - `diverge run --dump` when things go wrong mid-write:
# SIGKILL, SIGTERM/SIGHUP, the file size limit, a full disk, a destination
# that cannot be written. Whatever happens, a file already at the
# destination keeps its bytes, and no temporary ".out.h5.XXXXXX.part" is
# left behind except by SIGKILL (which the next dump of the same
# destination removes, unless a live writer still holds it).
#
# Deterministic: a writer is frozen with SIGSTOP once its temporary file
# holds data, checked while frozen, then signalled. The only waiting is a
# bounded poll for that moment.
. "$(dirname "$0")/lib.sh"

bg_pids=()
mnt=""
cleanup() {
    local p
    for p in "${bg_pids[@]}"; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    [ -n "$mnt" ] && umount "$mnt" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

M=$T/m.gguf
"$D" fixture small -o "$M" >/dev/null || { echo "FAIL: fixture small"; exit 1; }
# A long dump: two prefill passes put megabytes into the temporary file
# early, then 192 single-token passes keep the writer busy for seconds.
LONG_TOKS=$(seq -s, 1 256)
LONG_PASSES="32,32$(printf ',1%.0s' $(seq 192))"
# A medium one (about 12 MB of dump) for the size limit and the full disk.
MID_TOKS=$(seq -s, 1 64)
MID_PASSES=32,16,8,4,2,1,1

# parts DIR: names of the temporary files of DIR/out.h5, one per line.
parts() { find "$1" -maxdepth 1 -name '.out.h5.??????.part' -printf '%f\n'; }
no_parts() { [ -z "$(parts "$1")" ]; }
sha() { sha256sum <"$1"; }

# proc_state PID: R, S, T (stopped), Z (exited, not yet waited for), ...
proc_state() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1; }

# start_writer DIR [TOKENS PASSES]: `diverge run --dump DIR/out.h5` in the
# background; its pid in $pid.
start_writer() {
    "$D" run "$M" --tokens "${2:-$LONG_TOKS}" --passes "${3:-$LONG_PASSES}" \
        --dump "$1/out.h5" >"$T/bg.out" 2>"$T/bg.err" &
    pid=$!
    bg_pids+=("$pid")
}

# freeze_mid_write PID DIR: poll (at most ~120 s) until a temporary file of
# DIR/out.h5 holds 1 MiB, then SIGSTOP the writer and wait until it is
# stopped. Its temporary file in $part. Fails when the writer ended first.
freeze_mid_write() {
    local pid=$1 dir=$2 i f
    part=""
    for ((i = 0; i < 2400; i++)); do
        case $(proc_state "$pid") in Z | "") return 1 ;; esac
        for f in "$dir"/.out.h5.??????.part; do
            [ -f "$f" ] && [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" -ge 1048576 ] && part=$f
        done
        [ -n "$part" ] && break
        sleep 0.05
    done
    [ -n "$part" ] || return 1
    kill -STOP "$pid" || return 1
    for ((i = 0; i < 2400; i++)); do
        case $(proc_state "$pid") in
        T) [ -f "$part" ]; return ;;   # frozen before its rename
        Z | "") return 1 ;;
        esac
        sleep 0.05
    done
    return 1
}

# is_locked FILE: some process holds a flock on FILE; unlocked: none does.
unlocked() { flock -n -x "$1" true; }
is_locked() { ! unlocked "$1"; }

# forget PID: no longer ours to kill in the clean-up.
forget() {
    local p keep=()
    for p in "${bg_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    bg_pids=("${keep[@]}")
}

# ---- a. SIGKILL: the temporary file stays; the next dump removes it ----
A=$T/a
mkdir "$A"
expect 0 "earlier dump" -- "$D" run "$M" --tokens 5,6 --dump "$A/out.h5"
before=$(sha "$A/out.h5")
start_writer "$A"
if freeze_mid_write "$pid" "$A"; then
    ok "SIGKILL: the live writer holds its temporary file" is_locked "$part"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null # no "Killed" job notice
    rc=$?
    forget "$pid"
    ok "SIGKILL: killed by the signal (status $rc)" test "$rc" -eq 137
    ok "SIGKILL: out.h5 keeps its bytes" test "$(sha "$A/out.h5")" = "$before"
    ok "SIGKILL: the temporary file is left" test -f "$part"
    ok "SIGKILL: its lock died with the writer" unlocked "$part"
else
    ok "SIGKILL: the writer was caught mid-write" false
fi
expect 0 "dump after SIGKILL" -- "$D" run "$M" --tokens 1,2,3 --dump "$A/out.h5"
ok "the stale temporary file is removed" no_parts "$A"
ok "out.h5 is the new dump" test "$(sha "$A/out.h5")" != "$before"
expect 0 "info on the new dump" -- "$D" info "$A/out.h5"
ok "info reads a diverge dump" grep -q "diverge-dump" "$T/out"

# A temporary file held by a live (here: stopped) writer is not stale.
start_writer "$A"
if freeze_mid_write "$pid" "$A"; then
    expect 0 "second writer beside a live one" -- "$D" run "$M" --tokens 7,8 --dump "$A/out.h5"
    ok "the live writer's temporary file survives" test -f "$part"
    ok "the second writer left none of its own" test "$(parts "$A")" = "$(basename "$part")"
    expect 0 "info on the second writer's dump" -- "$D" info "$A/out.h5"
    second=$(sha "$A/out.h5")
    # let the first writer finish: it still owns its file and commits it
    kill -CONT "$pid"
    wait "$pid"
    rc=$?
    forget "$pid"
    ok "the first writer finishes (status $rc)" test "$rc" -eq 0
    ok "and commits over the second one" test "$(sha "$A/out.h5")" != "$second"
    ok "no temporary file left" no_parts "$A"
    expect 0 "info on the first writer's dump" -- "$D" info "$A/out.h5"
else
    ok "live writer: caught mid-write" false
fi

# ---- b. SIGTERM / SIGHUP: the handler removes the temporary file -------
for sig in TERM HUP; do
    B=$T/b-$sig
    mkdir "$B"
    expect 0 "earlier dump ($sig)" -- "$D" run "$M" --tokens 5,6 --dump "$B/out.h5"
    before=$(sha "$B/out.h5")
    start_writer "$B"
    if freeze_mid_write "$pid" "$B"; then
        kill "-$sig" "$pid"
        kill -CONT "$pid"
        wait "$pid" 2>/dev/null # no "Killed" job notice
        rc=$?
        forget "$pid"
        want=$((128 + $(kill -l "$sig")))
        ok "SIG$sig: killed by the signal (status $rc, want $want)" test "$rc" -eq "$want"
        ok "SIG$sig: out.h5 keeps its bytes" test "$(sha "$B/out.h5")" = "$before"
        ok "SIG$sig: no temporary file left" no_parts "$B"
    else
        ok "SIG$sig: the writer was caught mid-write" false
    fi
done

# ---- c. RLIMIT_FSIZE: EFBIG, one error line, nothing lost ---------------
C=$T/c
mkdir "$C"
expect 0 "earlier dump (fsize)" -- "$D" run "$M" --tokens 5,6 --dump "$C/out.h5"
before=$(sha "$C/out.h5")
# 2 MiB (bash counts 1 KiB blocks): above the earlier dump (~0.6 MB), far
# below the new one (~12 MB). The limit stops writes past it; the earlier
# file is only renamed over, never written.
limit=2048
ok "the earlier dump is below the limit" test "$(stat -c %s "$C/out.h5")" -lt $((limit * 1024))
expect 3 "dump past the file size limit" -- \
    bash -c 'ulimit -f "$1" && exec "${@:2}"' - "$limit" \
    "$D" run "$M" --tokens "$MID_TOKS" --passes "$MID_PASSES" --dump "$C/out.h5"
ok "EFBIG: one error line naming out.h5" one_error_line out.h5
ok "EFBIG: says the file is too large" grep -q "File too large" "$T/err"
ok "EFBIG: out.h5 keeps its bytes" test "$(sha "$C/out.h5")" = "$before"
ok "EFBIG: no temporary file left" no_parts "$C"

# ---- d. a full disk: a 1 MiB tmpfs (needs root) -------------------------
E=$T/d
mkdir "$E"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=1m,mode=0755 tmpfs "$E" 2>/dev/null; then
    mnt=$E
    expect 0 "earlier dump (full disk)" -- "$D" run "$M" --tokens 5,6 --dump "$E/out.h5"
    before=$(sha "$E/out.h5")
    expect 3 "dump onto a full disk" -- \
        "$D" run "$M" --tokens "$MID_TOKS" --passes "$MID_PASSES" --dump "$E/out.h5"
    ok "ENOSPC: one error line naming out.h5" one_error_line out.h5
    ok "ENOSPC: says the disk is full" grep -q "No space left on device" "$T/err"
    ok "ENOSPC: out.h5 keeps its bytes" test "$(sha "$E/out.h5")" = "$before"
    ok "ENOSPC: no temporary file left" no_parts "$E"
    ok "ENOSPC: the space is given back" \
        test "$(df -k --output=used "$E" | tail -1)" -le $(($(stat -c %s "$E/out.h5") / 1024 + 8))
    umount "$E" && mnt=""
else
    echo "SKIP: full-disk case: mounting a 1 MiB tmpfs needs root (uid $(id -u)) and mount rights"
fi

# ---- e. a destination that cannot be written ----------------------------
expect_2_or_3() { # like expect, for either status of bad input / runtime
    local what=$1
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    ok "$what: exit $rc (2 or 3)" test "$rc" -eq 2 -o "$rc" -eq 3
}
expect_2_or_3 "missing directory" -- "$D" run "$M" --tokens 1,2 --dump "$T/no/such/out.h5"
ok "missing directory: one error line" one_error_line "no/such/out.h5"
ok "missing directory: says why" grep -q "No such file or directory" "$T/err"
ok "missing directory: nothing created" test ! -e "$T/no"
: >"$T/plain"
expect_2_or_3 "parent is a file" -- "$D" run "$M" --tokens 1,2 --dump "$T/plain/out.h5"
ok "parent is a file: one error line" one_error_line "plain/out.h5"
ok "parent is a file: says why" grep -q "Not a directory" "$T/err"
ok "parent is a file: untouched" test ! -s "$T/plain"
mkdir "$T/adir"
expect 2 "destination is a directory" -- "$D" run "$M" --tokens 1,2 --dump "$T/adir"
ok "destination is a directory: one error line" one_error_line adir
ok "destination is a directory: untouched" test -z "$(ls -A "$T/adir")"

# A read-only directory: root ignores permission bits, so run as nobody.
R=$T/ro
mkdir "$R"
expect 0 "earlier dump (read-only)" -- "$D" run "$M" --tokens 5,6 --dump "$R/out.h5"
before=$(sha "$R/out.h5")
chmod 555 "$R"
as=()
if [ "$(id -u)" -eq 0 ]; then
    chmod a+rx "$T" && chmod a+r "$M"
    as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    "${as[@]}" test -x "$D" -a -r "$M" 2>/dev/null || as=(skip)
fi
if [ "${as[0]:-}" = skip ]; then
    echo "SKIP: read-only directory: nobody (uid 65534) cannot run $D"
else
    expect 3 "read-only directory" -- "${as[@]}" "$D" run "$M" --tokens 1,2 --dump "$R/out.h5"
    ok "read-only directory: one error line" one_error_line "ro/out.h5"
    ok "read-only directory: says why" grep -q "Permission denied" "$T/err"
    ok "read-only directory: out.h5 keeps its bytes" test "$(sha "$R/out.h5")" = "$before"
    ok "read-only directory: nothing created" test "$(ls -A "$R")" = out.h5
fi
chmod 755 "$R"
finish
