# check.sh - the one check of the lsan scripts, sourced by lsan.sh and
# lsan_llama.sh: check NAME clean|leak PATTERN -- COMMAND... runs COMMAND
# and wants no LeakSanitizer report (clean) or a failing run that reports
# a leak matching PATTERN (leak); sets fail=1 otherwise.
fail=0
check() { # NAME WANT(clean|leak) PATTERN -- COMMAND...
    local name=$1 want=$2 pattern=$3
    shift 4
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ "$want" = clean ] && [ $rc -eq 0 ] && ! grep -q "LeakSanitizer" <<<"$out"; then
        echo "ok: $name"
    elif [ "$want" = leak ] && [ $rc -ne 0 ] && grep -q "detected memory leaks" <<<"$out" &&
         grep -q -- "$pattern" <<<"$out"; then
        echo "ok: $name (reported, as it must be)"
    else
        echo "FAIL: $name: wanted $want${pattern:+ matching '$pattern'}, exit $rc:"
        echo "$out" | head -40
        fail=1
    fi
}
