#!/usr/bin/env bash
# engine_stub.sh - a dump written by another engine through the public C
# API (engine_stub.c) is one that `diverge info` and h5py read, value for
# value.
#
# usage: engine_stub.sh ENGINE_STUB PYTHON   (PYTHON "none": no h5py checks)
here=$(dirname "$0")
. "$here/../integration/lib.sh"
STUB=${1:?usage: engine_stub.sh ENGINE_STUB PYTHON}
PY=${2:-none}

expect 0 "engine stub writes its dumps and checks the API's failures" -- "$STUB" "$T"
sed 's/^/    /' "$T/err" | head -20

# the names and the pass layout, as diverge reads them
table='blk.0.attn_norm blk.0.q blk.0.kq stub.fused_qkv logits'
for f in stub stub64; do
    expect 0 "info $f.h5" -- "$D" info "$T/$f.h5"
    ok "$f.h5: header" grep -q "^$T/$f.h5: diverge-dump v1, 2 passes, 10 tensors$" "$T/out"
    ok "$f.h5: pass 0" grep -q "^pass 0000  pos0 0  tokens 3: 1 7 30$" "$T/out"
    ok "$f.h5: pass 1" grep -q "^pass 0001  pos0 3  tokens 1: 5$" "$T/out"
    for name in $table; do
        ok "$f.h5 lists $name in both passes" test "$(grep -c " $name " "$T/out")" -eq 2
    done
    ok "$f.h5: the engine's own op" grep -qE " stub.fused_qkv +0 +fused_qkv +\[3, 16\] " "$T/out"
    ok "$f.h5: kq [H, T, pos0 + T] in pass 1" grep -qE " blk.0.kq +0 +kq +\[2, 1, 4\] " "$T/out"
    ok "$f.h5: an extra root attribute" grep -qE '^  stub.commit += "caf' "$T/out"
    cp "$T/out" "$T/$f.info"
done
ok "stub.h5 stores f32" test "$(grep -cE '\] +f32 ' "$T/stub.info")" -eq 10
ok "stub64.h5 stores f64" test "$(grep -cE '\] +f64 ' "$T/stub64.info")" -eq 10
# the masked keys of pass 0: 2 heads x (2 + 1) keys after the query
ok "kq's -inf counted" grep -qE " blk.0.kq +0 +kq +\[2, 3, 3\] .* 0 +6$" "$T/stub.info"

# nothing but the two dumps, the reference and the killed writer's leftovers
# (removed by the stub) may remain
ok "no temporary files left" test -z "$(find "$T" -name '.*.part')"

if [ "$PY" = none ] || ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
    echo "FAIL: the h5py comparison needs python3-h5py for $PY (scripts/deps installs it)"
    exit 1
fi
expect 0 "h5py reads every value as the stub wrote it" -- \
    "$PY" "$here/engine_stub_check.py" "$T"
cat "$T/out" "$T/err" | sed 's/^/    /' | head -40
finish
