#!/usr/bin/env bash
# compare.sh - `diverge compare` end to end.
#
# No false alarms: on every fixture and weight type, on stories260K and on
# llama.cpp's mini-llama, vulkan vs cpu with the cpu-f64 oracle agrees
# under the built-in policy (exit 0). Every fault of the zoo is reported
# (exit 1) at the first tensor it touches, with its pass; so is an outside
# engine's mask that reaches one key too far, at blk.L.kq. Then the output
# forms (JSON, --all, -o), and bad input (exit 2, one error line): a
# reference or oracle holding NaN, an oracle that is not a float64 dump of
# the reference's run.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
TOKS=1,2,3,4,5,6,7,8,9,10,11,12,13
SCHED=6,5,1,1

# dumps NAME MODEL: the cpu, cpu-f64 and vulkan dumps of MODEL, T/NAME-*.h5
dumps() {
    local b
    for b in cpu cpu-f64 vulkan; do
        expect 0 "$1 $b dump" -- "$D" run "$2" --backend "$b" --tokens $TOKS --passes $SCHED \
            --dump "$T/$1-$b.h5"
    done
}

for size in tiny small; do
    for type in f32 f16 q8_0 q4_0 q4_k q6_k; do
        n=$size-$type
        expect 0 "fixture $n" -- "$D" fixture "$n" -o "$T/$n.gguf"
        dumps "$n" "$T/$n.gguf"
        expect 0 "$n: vulkan agrees with cpu within the noise floor" -- \
            "$D" compare "$T/$n-vulkan.h5" "$T/$n-cpu.h5" --oracle "$T/$n-cpu-f64.h5"
        grep -q "^agree: " "$T/out" || { echo "$n:"; cat "$T/out"; }
    done
done
expect 0 "import stories260K" -- "$D" import-llama2c "$FX/data/stories260K.bin" \
    "$FX/data/tok512.bin" -o "$T/stories.gguf"
dumps stories "$T/stories.gguf"
expect 0 "stories260K: vulkan agrees with cpu within the noise floor" -- \
    "$D" compare "$T/stories-vulkan.h5" "$T/stories-cpu.h5" --oracle "$T/stories-cpu-f64.h5"
dumps mini "$FX/data/mini-llama-q8_0.gguf"
expect 0 "mini-llama-q8_0 (written by llama.cpp): vulkan agrees with cpu" -- \
    "$D" compare "$T/mini-vulkan.h5" "$T/mini-cpu.h5" --oracle "$T/mini-cpu-f64.h5"
ok "the text names the floor rule" grep -q "err(test, oracle) > m err(ref, oracle)" "$T/out"
ok "per-layer table" grep -q "^ *layer  *pass  *tensor" "$T/out"
ok "growth table" grep -q "^residual growth" "$T/out"

# The fault zoo: fault, model, expected first divergence (pass and tensor).
# A fault limited to layer L must leave every earlier tensor alone.
while read -r fault model pass tensor; do
    [ -n "$fault" ] || continue
    mf=$T/$model.gguf
    [ "$model" = stories ] && mf=$T/stories.gguf
    expect 0 "$fault on $model" -- "$D" run "$mf" --backend vulkan --tokens $TOKS \
        --passes $SCHED --inject "$fault" --dump "$T/fault.h5"
    expect 1 "$fault is reported" -- "$D" compare "$T/fault.h5" "$T/$model-cpu.h5" \
        --oracle "$T/$model-cpu-f64.h5"
    want="^first divergence: pass $pass (pos0 [0-9]*, [0-9]* tokens\?), layer [0-9]*, $tensor ("
    ok "$fault: first divergence at pass $pass $tensor" grep -q "$want" "$T/out"
    grep -q "$want" "$T/out" || grep "^first divergence" "$T/out"
    ok "$fault: the header names the fault" grep -q "fault ${fault%@*}" "$T/out"
done <<'EOF'
mask-no-past@2      small-f32  1 blk.2.kq
mask-no-past        tiny-q4_0  1 blk.0.kq
rope-neox-swap@1    small-f32  0 blk.1.q_rope
rope-neox-swap      tiny-q8_0  0 blk.0.q_rope
rope-base@3         small-q8_0 0 blk.3.q_rope
matmul-k-tail@2     stories    0 blk.2.ffn_out
softmax-no-scale@1  small-q4_0 0 blk.1.kq
softmax-no-scale    tiny-f16   0 blk.0.kq
f16-accum@2         small-f16  0 blk.2.q
f16-accum           tiny-f16   0 blk.0.q
q4k-scale@1         small-q4_k 0 blk.1.q
q4k-scale           small-q4_k 0 blk.0.attn_in
gqa-map@4           small-q8_0 0 blk.4.kq
rmsnorm-eps@1       tiny-f32   0 blk.1.attn_norm
rmsnorm-eps         small-q6_k 0 blk.0.attn_norm
kv-stale@2          small-q6_k 1 blk.2.kq
kv-stale            tiny-f32   1 blk.0.kq
EOF

# mask-no-past: -inf where the reference is finite is named with its place
expect 0 "mask fault dump" -- "$D" run "$T/small-f32.gguf" --backend vulkan --tokens $TOKS \
    --passes $SCHED --inject mask-no-past@2 --dump "$T/mask.h5"
expect 1 "mask fault without the oracle" -- "$D" compare "$T/mask.h5" "$T/small-f32-cpu.h5"
ok "NaN/Inf count named" grep -q "NaN/Inf in the test where the reference is finite" "$T/out"
ok "first NaN/Inf position named" grep -q "first non-finite mismatch at \[h=[0-9]*, t=[0-9]* (pos [0-9]*), key=[0-9]*\]: test -inf, ref " "$T/out"

# An engine written outside the project (tests/interop/leaky_mask.py,
# plain h5py) whose causal mask lets query t see key t+1 too: its scores
# are finite where the reference holds -inf, so the first divergence is
# blk.0.kq of pass 0 (not kq_softmax, one tensor late), with the first
# such position, in the text and in the JSON, with or without the oracle.
LEAK=$(dirname "$0")/../interop/leaky_mask.py
expect 0 "the leaky engine writes its dump" -- $PY "$LEAK" "$T/tiny-f32-cpu.h5" "$T/leak.h5"
for oracle in "" "--oracle $T/tiny-f32-cpu-f64.h5"; do
    expect 1 "leaky mask ${oracle:+with the oracle}" -- "$D" compare "$T/leak.h5" \
        "$T/tiny-f32-cpu.h5" $oracle
    ok "leaky mask: first divergence at pass 0 blk.0.kq" \
        grep -q "^first divergence: pass 0 (pos0 0, 6 tokens), layer 0, blk.0.kq (kq)$" "$T/out"
    grep -q "^first divergence: pass 0 .* blk.0.kq (kq)$" "$T/out" || grep "^first divergence" "$T/out"
    # tiny: 4 heads x queries 0..4 of the 6-token first pass see one key too many
    ok "leaky mask: the count" grep -q "^  20 values where the reference is -inf and the test is not$" "$T/out"
    ok "leaky mask: the first position and its values" grep -q \
        "^  first non-finite mismatch at \[h=0, t=0 (pos 0), key=1\]: test [-0-9.e+]*, ref -inf (20 in the tensor)$" "$T/out"
    ok "leaky mask: the per-layer table counts them" grep -qE "^ +0 +0  blk.0.kq .* 20 +inf  <- first divergence$" "$T/out"
done
expect 1 "leaky mask, json" -- "$D" compare "$T/leak.h5" "$T/tiny-f32-cpu.h5" --format json
cat >"$T/leak.py" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["tensors"][r["first_divergence"]]
assert (f["pass"], f["name"], f["layer"], f["status"]) == (0, "blk.0.kq", 0, "diverged"), f
at = f["nonfinite_at"]
assert (at["head"], at["token"], at["pos"], at["key"], at["flat"]) == (0, 0, 0, 1, 1), at
nf = f["nonfinite"]
assert nf["mismatches"] == 20 and nf["ref"] == "-inf" and isinstance(nf["test"], float), nf
m = f["metrics"]
assert m["nonfinite_mismatch"] == 20 and m["nonfinite_mismatch_first"] == 1, m
assert m["bad_ref"] == 20 and m["bad_test"] == 0 and m["neginf_ref"] == 60, m
assert m["max_abs"] == 0 and m["n_used"] == 144 - 60, m   # the metrics: finite pairs only
assert f["ratio"] == "inf"
assert r["verdict"] == "diverged" and r["summary"]["broken"] == 0
assert "nonfinite" not in f["tolerance"]
print("leak json ok")
PY
ok "leaky mask: json names kq, its first position and count" $PY "$T/leak.py" "$T/out"

# A reference or an oracle holding NaN (h5py fills copies) is bad input,
# never agreement: exit 2, one line naming the file, the tensor and where.
cat >"$T/fill.py" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    for p in f["passes"].values():
        for n, d in p.items():
            if n != "tokens":
                d[...] = np.full(d.shape, np.nan, d.dtype)
PY
cp "$T/tiny-f32-cpu.h5" "$T/nan-ref.h5"
cp "$T/tiny-f32-cpu-f64.h5" "$T/nan-oracle.h5"
expect 0 "NaN reference" -- $PY "$T/fill.py" "$T/nan-ref.h5"
expect 0 "NaN oracle" -- $PY "$T/fill.py" "$T/nan-oracle.h5"
expect 2 "finite test against an all-NaN reference" -- "$D" compare "$T/tiny-f32-vulkan.h5" \
    "$T/nan-ref.h5"
ok "one error line naming the reference and the first NaN" one_error_line \
    "nan-ref.h5: pass 0 (pos0 0, 6 tokens), layer 0, blk.0.attn_in (get_rows): the reference holds 384 NaN where a forward pass cannot, the first at \[t=0 (pos 0), col=0\] is nan; 152 of 152 tensors are broken"
expect 2 "the same with -o and json" -- "$D" compare "$T/tiny-f32-vulkan.h5" "$T/nan-ref.h5" \
    --format json -o "$T/nan.json"
ok "no report written" test ! -e "$T/nan.json"
expect 2 "an all-NaN oracle" -- "$D" compare "$T/tiny-f32-vulkan.h5" "$T/tiny-f32-cpu.h5" \
    --oracle "$T/nan-oracle.h5"
ok "one error line naming the oracle" one_error_line "nan-oracle.h5: .* the oracle holds 384 NaN"
expect 1 "an all-NaN test diverges at its first tensor" -- "$D" compare "$T/nan-ref.h5" \
    "$T/tiny-f32-cpu.h5" --oracle "$T/tiny-f32-cpu-f64.h5"
ok "at blk.0.attn_in" grep -q "^first divergence: pass 0 (pos0 0, 6 tokens), layer 0, blk.0.attn_in" "$T/out"

# JSON: parses, carries every row and the first divergence
expect 1 "json" -- "$D" compare "$T/mask.h5" "$T/small-f32-cpu.h5" --oracle \
    "$T/small-f32-cpu-f64.h5" --format json
cat >"$T/check.py" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["schema"] == "diverge-compare" and r["verdict"] == "diverged", r["verdict"]
rows = r["tensors"]
f = rows[r["first_divergence"]]
assert (f["pass"], f["name"], f["status"]) == (1, "blk.2.kq", "diverged"), f
assert f["metrics"]["bad_test"] > 0 and f["ratio"] == "inf", f
assert f["nonfinite_at"]["key"] >= 0
assert all(x["status"] == "ok" for x in rows[:r["first_divergence"]])
assert r["summary"]["compared"] == len(rows)
assert r["oracle"]["backend"] == "cpu-f64"
assert all(x["oracle"] is not None for x in rows)
assert r["test"]["inject"] == "mask-no-past@2"
print("json ok")
PY
ok "json carries everything" $PY "$T/check.py" "$T/out"

# --all lists every tensor; -o writes the report, only when complete
expect 0 "--all" -- "$D" compare "$T/tiny-f32-vulkan.h5" "$T/tiny-f32-cpu.h5" --all
ok "--all lists every tensor (4 passes x 38)" \
    test "$(grep -c '^ *[0-9] blk\.\|^ *[0-9] logits\|^ *[0-9] output_norm' "$T/out")" -eq 152
ok "no colour when not on a terminal" bash -c "! grep -q $'\033' '$T/out'"
expect 0 "-o" -- "$D" compare "$T/tiny-f32-vulkan.h5" "$T/tiny-f32-cpu.h5" -o "$T/report.txt"
ok "-o wrote the report" grep -q "^agree: " "$T/report.txt"
cp "$T/report.txt" "$T/report.keep"
expect 2 "-o with a bad input" -- "$D" compare "$T/nothing.h5" "$T/tiny-f32-cpu.h5" -o "$T/report.txt"
ok "the old report is untouched" cmp -s "$T/report.txt" "$T/report.keep"
ok "no temporary file left" test -z "$(ls -A "$T" | grep '\.part$')"

# alignment: a filtered dump compares on what it has
expect 0 "filtered dump" -- "$D" run "$T/tiny-f32.gguf" --backend vulkan --tokens $TOKS \
    --passes $SCHED --select 'blk.1.*' --dump "$T/sel.h5"
expect 0 "compare a filtered dump" -- "$D" compare "$T/sel.h5" "$T/tiny-f32-cpu.h5"
ok "missing tensors summarised" grep -q "only in the reference" "$T/out"
expect 0 "other schedule" -- "$D" run "$T/tiny-f32.gguf" --tokens $TOKS --passes 6,7 \
    --dump "$T/sched.h5"
expect 1 "other schedule is not agreement" -- "$D" compare "$T/sched.h5" "$T/tiny-f32-cpu.h5"
ok "schedule difference named" grep -q "^pass 1: schedule differs" "$T/out"
expect 0 "logits only" -- "$D" run "$T/tiny-f32.gguf" --tokens $TOKS --select logits \
    --dump "$T/lo.h5"
expect 0 "q only" -- "$D" run "$T/tiny-f32.gguf" --tokens $TOKS --select 'blk.0.q' \
    --dump "$T/q.h5"
expect 2 "nothing in common" -- "$D" compare "$T/lo.h5" "$T/q.h5"
ok "one error line" one_error_line "no tensor in common"

# policies: a file; bad files exit 2 with the line and the key
cat >"$T/strict.json" <<'EOF'
{"default": {"nmse": 0}, "tensors": [{"match": "blk.0.attn_in", "nmse": null}]}
EOF
expect 1 "a strict policy" -- "$D" compare "$T/tiny-f32-vulkan.h5" "$T/tiny-f32-cpu.h5" \
    --policy "$T/strict.json"
ok "policy source in the header" grep -q "^policy  *$T/strict.json" "$T/out"
printf '{\n  "default": {\n    "nmse": 1e-6,\n    "nmsee": 2\n  }\n}\n' >"$T/typo.json"
expect 2 "unknown key" -- "$D" compare "$T/tiny-f32-vulkan.h5" "$T/tiny-f32-cpu.h5" \
    --policy "$T/typo.json"
ok "names the line and key" one_error_line "typo.json: line 4: key 'default.nmsee'"
printf '{"default": {"nmse": 1e-6,}}\n' >"$T/syntax.json"
expect 2 "syntax error" -- "$D" compare "$T/tiny-f32-vulkan.h5" "$T/tiny-f32-cpu.h5" \
    --policy "$T/syntax.json"
ok "names the line" one_error_line "syntax.json: line 1"
expect 0 "--print-policy" -- "$D" compare --print-policy
ok "the built-in policy is JSON" $PY -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out"

# bad input
expect 2 "missing file" -- "$D" compare "$T/nothing.h5" "$T/tiny-f32-cpu.h5"
ok "one error line" one_error_line "nothing.h5"
expect 2 "not a dump" -- "$D" compare "$T/tiny-f32.gguf" "$T/tiny-f32-cpu.h5"
ok "one error line" one_error_line "tiny-f32.gguf"
expect 2 "oracle of another model" -- "$D" compare "$T/tiny-f32-vulkan.h5" \
    "$T/tiny-f32-cpu.h5" --oracle "$T/small-f32-cpu-f64.h5"
ok "one error line" one_error_line "another model"
# only a float64 dump of the reference's run is an oracle: an f32 cpu dump
# turned a clean vulkan run into "DIVERGED ... 224 of 440"
cp "$T/tiny-f32-cpu.h5" "$T/cpu-copy.h5"
expect 2 "an f32 cpu dump as the oracle" -- "$D" compare "$T/tiny-f32-vulkan.h5" \
    "$T/tiny-f32-cpu.h5" --oracle "$T/cpu-copy.h5"
ok "one error line" one_error_line "cpu-copy.h5: not a float64 oracle dump (backend cpu; pass 0 blk.0.attn_in is float32)"
expect 2 "the reference as its own oracle" -- "$D" compare "$T/tiny-f32-vulkan.h5" \
    "$T/tiny-f32-cpu.h5" --oracle "$T/tiny-f32-cpu.h5"
ok "one error line" one_error_line "tiny-f32-cpu.h5: the oracle is the reference dump itself"
expect 2 "the test as the oracle" -- "$D" compare "$T/tiny-f32-cpu-f64.h5" \
    "$T/tiny-f32-cpu.h5" --oracle "$T/tiny-f32-cpu-f64.h5"
ok "one error line" one_error_line "tiny-f32-cpu-f64.h5: the oracle is the test dump itself"
expect 0 "an f64 run of other tokens" -- "$D" run "$T/tiny-f32.gguf" --backend cpu-f64 \
    --tokens 1,2,3,4,5,6,7,8,9,10,11,12,14 --passes $SCHED --dump "$T/other-f64.h5"
expect 2 "an oracle of other tokens" -- "$D" compare "$T/tiny-f32-vulkan.h5" \
    "$T/tiny-f32-cpu.h5" --oracle "$T/other-f64.h5"
ok "one error line" one_error_line "other-f64.h5: pass 3 of the oracle ran other tokens"
expect 2 "one file" -- "$D" compare "$T/tiny-f32-cpu.h5"
expect 2 "bad format" -- "$D" compare "$T/tiny-f32-vulkan.h5" "$T/tiny-f32-cpu.h5" --format xml
finish
