#!/usr/bin/env bash
# compare.sh - `diverge compare` end to end.
#
# No false alarms: on every fixture and weight type, on stories260K and on
# llama.cpp's mini-llama, vulkan vs cpu with the cpu-f64 oracle agrees
# under the built-in policy (exit 0). Every fault of the zoo is reported
# (exit 1) at the first tensor it touches, with its pass. Then the output
# forms (JSON, --all, -o), and bad input (exit 2, one error line).
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
ok "first NaN/Inf position named" grep -q "first NaN/Inf at \[h=[0-9]*, t=[0-9]* (pos [0-9]*), key=[0-9]*\]" "$T/out"

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
expect 2 "one file" -- "$D" compare "$T/tiny-f32-cpu.h5"
expect 2 "bad format" -- "$D" compare "$T/tiny-f32-vulkan.h5" "$T/tiny-f32-cpu.h5" --format xml
finish
