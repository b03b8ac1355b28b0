#!/usr/bin/env bash
# bisect.sh - `diverge bisect` end to end on lavapipe (or any Vulkan device).
#
# No false alarms: every fixture and weight type, stories260K and llama.cpp's
# mini-llama exit 0 ("no divergence above the noise floor"). The fault zoo:
# every fault of design.md, and layer-restricted variants NAME@L (L > 0), on
# fixtures of the weight types the fault concerns, is found at the expected
# pass, layer and op (the culprit of the op replay), exits 1, and the
# --gpu-layers split names the same layer. Then the kept dumps, JSON, and
# bad input (exit 2, one error line), an all-NaN model included.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3

for size in tiny small; do
    for type in f32 f16 q8_0 q4_0 q4_k q6_k; do
        n=$size-$type
        expect 0 "fixture $n" -- "$D" fixture "$n" -o "$T/$n.gguf"
        expect 0 "$n: clean" -- "$D" bisect "$T/$n.gguf"
        ok "$n: the verdict says clean" grep -q "^clean: no divergence above the noise floor" "$T/out"
    done
done
expect 0 "import stories260K" -- "$D" import-llama2c "$FX/data/stories260K.bin" \
    "$FX/data/tok512.bin" -o "$T/stories.gguf"
expect 0 "stories260K: clean" -- "$D" bisect "$T/stories.gguf" \
    --prompt "Once upon a time, there was a little"
ok "stories260K: the 10 prompt tokens in 4,4,1,1" grep -q "^tokens   10 in passes 4,4,1,1:" "$T/out"
expect 0 "mini-llama-q8_0 (written by llama.cpp): clean" -- "$D" bisect \
    "$FX/data/mini-llama-q8_0.gguf"

# The fault zoo: fault, model, then what bisect must name: the first
# divergent pass, the layer, the culprit op's tensor (where the error
# starts; here also where it shows) and the layer the --gpu-layers split
# finds. Faults limited to a layer use L > 0 on the bigger fixture.
cat >"$T/check.py" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
fault, npass, layer, tensor, split = sys.argv[2:7]
f, rp, s = r["first_divergence"], r["replay"], r["layer_split"]
got = (f["pass"], f["layer"], f["tensor"], rp["culprit"], s["first_layer"])
want = (int(npass), int(layer), tensor, tensor, int(split))
assert r["diverged"] and got == want, "%s: got %s, want %s" % (fault, got, want)
ops = rp["ops"]
c = [o for o in ops if o["tensor"] == tensor][0]
assert c["role"] == "culprit" and c["alone"]["status"] == "diverged", c
# every op before the culprit agrees alone and in the full run
i = ops.index(c)
assert all(o["role"] in ("ok", "view") for o in ops[:i]), [o["role"] for o in ops[:i]]
# every pass before the first divergent one is clean
assert all(p["status"] == "clean" for p in r["passes"][:f["pass"]])
assert r["inject"] == fault
PY
while read -r fault model npass layer tensor split; do
    [ -n "$fault" ] || continue
    expect 1 "$fault on $model diverges" -- "$D" bisect "$T/$model.gguf" --inject "$fault" \
        --format json
    ok "$fault: pass $npass, layer $layer, culprit $tensor, split $split" \
        $PY "$T/check.py" "$T/out" "$fault" "$npass" "$layer" "$tensor" "$split"
done <<'EOF'
mask-no-past        tiny-q4_0  1 0 blk.0.kq         0
mask-no-past@2      small-f32  1 2 blk.2.kq         2
rope-neox-swap      tiny-q8_0  0 0 blk.0.q_rope     0
rope-neox-swap@1    small-f32  0 1 blk.1.q_rope     1
rope-base           tiny-f32   0 0 blk.0.q_rope     0
rope-base@3         small-q8_0 0 3 blk.3.q_rope     3
matmul-k-tail       stories    0 0 blk.0.ffn_out    0
matmul-k-tail@2     stories    0 2 blk.2.ffn_out    2
softmax-no-scale    tiny-f16   0 0 blk.0.kq         0
softmax-no-scale@1  small-q4_0 0 1 blk.1.kq         1
f16-accum           tiny-f16   0 0 blk.0.q          0
f16-accum@2         small-f16  0 2 blk.2.q          2
q4k-scale           small-q4_k 0 0 blk.0.attn_in    0
q4k-scale@1         small-q4_k 0 1 blk.1.q          1
gqa-map             small-q8_0 0 0 blk.0.kq         0
gqa-map@4           small-q8_0 0 4 blk.4.kq         4
rmsnorm-eps         small-q6_k 0 0 blk.0.attn_norm  0
rmsnorm-eps@1       tiny-f32   0 1 blk.1.attn_norm  1
kv-stale            tiny-f32   1 0 blk.0.kq         0
kv-stale@2          small-q6_k 1 2 blk.2.kq         2
EOF

# The text report: the pass diagnosis, the replay table and the verdict.
expect 1 "text report" -- "$D" bisect "$T/small-q6_k.gguf" --inject kv-stale@2
ok "the mask/cache diagnosis" grep -q "only passes with pos0 > 0 diverge" "$T/out"
ok "the culprit row" grep -q "^  blk.2.kq  *kq  .* culprit$" "$T/out"
ok "ops after it are propagated" grep -q "^  blk.2.kq_softmax .* propagated$" "$T/out"
ok "later passes not run" grep -q "not run: stopped at the first divergence" "$T/out"
ok "top differing positions" grep -q "^    \[h=[0-9]*, t=[0-9]* (pos [0-9]*), key=[0-9]*\] *alone" "$T/out"
expect 1 "first-pass fault" -- "$D" bisect "$T/small-f32.gguf" --inject rope-neox-swap@1 \
    --no-layer-split
ok "the first pass already diverges" grep -q "the first pass (pos0 0, no past tokens)" "$T/out"
ok "no layer split when asked" bash -c "! grep -q '^layer split' '$T/out'"

# Kept evidence: the dumps of the passes run, which compare and logits read.
expect 1 "--keep-dumps" -- "$D" bisect "$T/small-f32.gguf" --inject mask-no-past@2 \
    --keep-dumps "$T/kept"
ok "three dumps" test -f "$T/kept/test.h5" -a -f "$T/kept/ref.h5" -a -f "$T/kept/oracle.h5"
ok "the mask's first non-finite mismatch" grep -qE \
    "^  first non-finite mismatch at \[h=[0-9]+, t=[0-9]+ \(pos [0-9]+\), key=[0-9]+\]: test -inf, ref [-0-9.e+]+ \([0-9]+ in the tensor\)$" "$T/out"
expect 1 "the same as JSON" -- "$D" bisect "$T/small-f32.gguf" --inject mask-no-past@2 \
    --format json --no-layer-split
ok "json: the first divergence's non-finite mismatches" $PY -c '
import json, sys
f = json.load(open(sys.argv[1]))["first_divergence"]
assert f["tensor"] == "blk.2.kq" and f["nonfinite"]["test"] == "-inf", f
assert f["nonfinite"]["mismatches"] > 0 and f["nonfinite_at"]["key"] > f["nonfinite_at"]["token"], f
' "$T/out"
expect 1 "compare the kept dumps" -- "$D" compare "$T/kept/test.h5" "$T/kept/ref.h5" \
    --oracle "$T/kept/oracle.h5"
ok "compare names the same tensor" grep -q "^first divergence: pass 1 .* blk.2.kq (" "$T/out"
ok "the fault is recorded" grep -q "fault mask-no-past@2" "$T/out"
expect 1 "logits on the kept dumps" -- "$D" logits "$T/kept/test.h5" "$T/kept/ref.h5"
expect 2 "--keep-dumps onto a file" -- "$D" bisect "$T/tiny-f32.gguf" --keep-dumps "$T/tiny-f32.gguf"
ok "one error line" one_error_line "not a directory"

# options
expect 0 "--oracle none: the policy's fixed limits" -- "$D" bisect "$T/tiny-q8_0.gguf" --oracle none
ok "says so" grep -q "^oracle   none" "$T/out"
expect 1 "--oracle none still finds a gross fault" -- "$D" bisect "$T/tiny-q8_0.gguf" \
    --oracle none --inject gqa-map
expect 0 "--ref cpu-f64" -- "$D" bisect "$T/tiny-f32.gguf" --ref cpu-f64 --oracle none
expect 0 "--tokens and --passes" -- "$D" bisect "$T/tiny-f32.gguf" --tokens 1,2,3,4,5 \
    --passes 2,2,1
ok "the schedule given" grep -q "^tokens   5 in passes 2,2,1:" "$T/out"
expect 0 "-o" -- "$D" bisect "$T/tiny-f32.gguf" -o "$T/report.txt"
ok "-o wrote the report" grep -q "^clean: " "$T/report.txt"

# A model whose reference computes NaN (every weight NaN: the GGUF's data
# section overwritten) is never "clean": exit 2, one line naming the
# model, the reference, the pass, the tensor and the first position; the
# kept dumps hold the pass that showed it.
data=$("$D" info "$T/tiny-f32.gguf" | sed -n 's/.*, data at \([0-9]*\)$/\1/p' | head -1)
ok "the data offset of tiny-f32.gguf" test -n "$data"
$PY - "$T/tiny-f32.gguf" "$T/nan.gguf" "$data" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
at = int(sys.argv[3])
n = (len(b) - at) // 4
b[at:at + 4 * n] = struct.pack("<f", float("nan")) * n
open(sys.argv[2], "wb").write(b)
PY
expect 2 "an all-NaN model is not clean" -- "$D" bisect "$T/nan.gguf"
ok "one error line naming the model and the first NaN" one_error_line \
    "nan.gguf: the cpu reference is broken at pass 0 (pos0 0, 6 tokens), blk.0.attn_in (get_rows): the reference holds 384 NaN where a forward pass cannot, the first at \[t=0 (pos 0), col=0\] is nan"
expect 2 "the same without the oracle, as JSON into a file" -- "$D" bisect "$T/nan.gguf" \
    --oracle none --format json -o "$T/nan.json" --keep-dumps "$T/nan-kept"
ok "one error line" one_error_line "nan.gguf: the cpu reference is broken at pass 0"
ok "no report written" test ! -e "$T/nan.json"
expect 0 "the kept reference dump is complete" -- "$D" info "$T/nan-kept/ref.h5"
ok "with the pass that showed it" grep -q "diverge-dump v1, 1 pass, 38 tensors$" "$T/out"

# activation patching (--patch): every position whose top-1 flips over the
# whole schedule is restored by the reference's residual after the faulty
# layer, and by no earlier one; a clean run flips nothing
for spec in kv-stale@2 rope-neox-swap@1; do
    L=${spec#*@}
    expect 1 "$spec --patch" -- "$D" bisect "$T/small-q6_k.gguf" --inject "$spec" --patch \
        --no-layer-split --format json -o "$T/patch.json"
    ok "$spec: flips, each made by layer $L" "$PY" - "$T/patch.json" "$L" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["patching"]
layers = {f["layer"] for f in p["flips"]}
print(len(p["flips"]), "flips, layers", layers, "runs", p["runs"])
sys.exit(0 if p["flips"] and layers == {int(sys.argv[2])} and p["runs"] == int(sys.argv[2]) + 1 else 1)
PY
done
expect 1 "text report of patching" -- "$D" bisect "$T/small-q6_k.gguf" --inject kv-stale@2 \
    --patch --no-layer-split
ok "the verdict names the layer" bash -c "tr -s ' \n' ' ' <'$T/out' | grep -q 'the reference.s residual after layer 2 restores every one (layer 2 makes the flips)'"
ok "the table" grep -qE "^ +1 +6 +[0-9]+ +[0-9]+  layer 2$" "$T/out"
expect 0 "a clean run with --patch" -- "$D" bisect "$T/tiny-f32.gguf" --patch --no-layer-split
ok "no flips" grep -q "0 positions flip top-1" "$T/out"
expect 2 "--patch with llama.cpp" -- "$D" bisect "$T/tiny-f32.gguf" --test llama.cpp:CPU --patch
ok "says why" grep -q "^diverge bisect: --patch needs a live test backend" "$T/err"

# --export-case: the culprit alone as a dump of its inputs and output; the
# command it writes judges that op again and names it
expect 1 "--export-case" -- "$D" bisect "$T/small-q6_k.gguf" --inject kv-stale@2 \
    --no-layer-split --export-case "$T/case"
ok "the report names the case" grep -q "^case     $T/case/case.h5: blk.2.kq alone" "$T/out"
ok "the command" test "$(cat "$T/case/command")" = \
    "diverge bisect $T/small-q6_k.gguf --test-dump $T/case/case.h5"
expect 1 "the case replays" -- "$D" bisect "$T/small-q6_k.gguf" --test-dump "$T/case/case.h5"
ok "its culprit is blk.2.kq" grep -qE "^  blk\.2\.kq +kq .* culprit$" "$T/out"
ok "at the same pass" grep -q "^first divergence (where it shows): pass 1 (pos0 6, 5 tokens), blk.2.kq (kq)" "$T/out"

# --all-culprits runs every pass: kv-stale@2's K cache shows in kq and
# attn_out of layer 2 alone, and nothing else diverges alone
expect 1 "--all-culprits" -- "$D" bisect "$T/small-q6_k.gguf" --inject kv-stale@2 \
    --all-culprits --no-layer-split
ok "every pass ran" bash -c "! grep -q 'not run' '$T/out'"
ok "one first divergent pass" test "$(grep -c 'first divergent pass' "$T/out")" -eq 1
ok "the culprits" grep -q "^all culprits (every op that diverges alone, first pass each): 2$" "$T/out"
ok "kq first" grep -qE "^  pass 1  blk\.2\.kq +kq " "$T/out"

# bad input: exit 2, one line naming the problem
expect 2 "passes do not add up" -- "$D" bisect "$T/tiny-f32.gguf" --tokens 1,2,3 --passes 2,2
ok "one error line" one_error_line "adds up to 4 tokens but there are 3"
expect 2 "unknown fault" -- "$D" bisect "$T/tiny-f32.gguf" --inject nonsense
expect 2 "fault layer out of range" -- "$D" bisect "$T/tiny-f32.gguf" --inject kv-stale@9
expect 2 "token out of the vocab" -- "$D" bisect "$T/tiny-f32.gguf" --tokens 1,99999
ok "one error line" one_error_line "vocab"
expect 2 "--test cpu" -- "$D" bisect "$T/tiny-f32.gguf" --test cpu
expect 2 "--oracle cpu" -- "$D" bisect "$T/tiny-f32.gguf" --oracle cpu
expect 2 "missing model" -- "$D" bisect "$T/nothing.gguf"
ok "one error line" one_error_line "nothing.gguf"
expect 2 "bad format" -- "$D" bisect "$T/tiny-f32.gguf" --format xml
finish
