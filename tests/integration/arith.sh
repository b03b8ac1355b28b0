#!/usr/bin/env bash
# arith.sh - declared arithmetic end to end (--act-quant, --kv-type).
#
# On a q8_0 fixture: the emulated cpu reference (llama.cpp's CPU arithmetic:
# activations to q8_0, an f16 KV cache) lands near 1e-4 NMSE from the exact
# cpu-f64 logits, the arithmetic itself; the emulated cpu-f64 oracle still
# works: the same arithmetic on another f32 BLAS kernel agrees within its
# noise floor (exit 0) while the exact reference judged by it diverges
# (exit 1), and an oracle of other arithmetic is refused (exit 2). Dumps
# record the arithmetic; bad values, a q8_0 cache the model cannot take and
# vulkan with either option give one error line and exit 2.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
TK=(--tokens 1,45,17,100,33,42,7,200,3,99,150 --passes 6,5)
EMU=(--act-quant auto --kv-type f16)

for n in tiny-q8_0 small-q8_0; do
    expect 0 "fixture $n" -- "$D" fixture "$n" -o "$T/$n.gguf"
done
M=$T/tiny-q8_0.gguf
expect 0 "emulated cpu" -- "$D" run "$M" "${TK[@]}" "${EMU[@]}" --dump "$T/emu.h5"
ok "run prints the arithmetic" grep -q "^arith    act-quant auto (q8_0=q8_0), attn-quant auto, kv cache f16$" "$T/out"
expect 0 "emulated cpu-f64" -- "$D" run "$M" "${TK[@]}" "${EMU[@]}" --backend cpu-f64 \
    --dump "$T/emu64.h5"
expect 0 "exact cpu" -- "$D" run "$M" "${TK[@]}" --dump "$T/exact.h5"
expect 0 "exact cpu-f64" -- "$D" run "$M" "${TK[@]}" --backend cpu-f64 --dump "$T/exact64.h5"
# another f32 kernel (OpenBLAS's Haswell sgemm: FMA, other blocking) under
# the same declared arithmetic; bit-identical where Haswell is the default
expect 0 "emulated cpu, Haswell sgemm" -- env OPENBLAS_CORETYPE=Haswell "$D" run "$M" "${TK[@]}" \
    "${EMU[@]}" --dump "$T/emu-haswell.h5"

# the logits NMSE against the exact oracle: 8-bit activations and an f16
# cache give ~1e-4 (llama.cpp's CPU sits 1.3e-4 from exact logits on
# mini-llama; fixtures/data/README.md); a decade either side
cat >"$T/nmse.py" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lo, hi = float(sys.argv[2]), float(sys.argv[3])
v = [t["metrics"]["nmse"] for t in r["tensors"] if t["name"] == "logits"]
print("logits nmse", " ".join("%.3g" % x for x in v))
sys.exit(0 if v and all(lo < x < hi for x in v) else 1)
PY
expect 1 "emulated cpu vs exact cpu-f64 (fixed limits)" -- "$D" compare "$T/emu.h5" \
    "$T/exact64.h5" --format json -o "$T/emu-exact.json"
expect 0 "logits NMSE near 1e-4" -- "$PY" "$T/nmse.py" "$T/emu-exact.json" 1e-5 1e-3
grep -o "logits nmse.*" "$T/out"
# the emulated oracle holds the same arithmetic: its logits sit at f32
# noise plus the odd near-tie step (tiny: none), far below 1e-4
expect 0 "emulated cpu vs emulated cpu-f64" -- "$D" compare "$T/emu.h5" "$T/emu64.h5" \
    --format json -o "$T/emu-emu64.json"
expect 0 "their logits NMSE below 1e-8" -- "$PY" "$T/nmse.py" "$T/emu-emu64.json" -1 1e-8
grep -o "logits nmse.*" "$T/out"

# calibrated: the emulated oracle is the noise floor of the emulated
# reference; another f32 kernel with the same arithmetic agrees, the exact
# reference does not
expect 0 "same arithmetic, other sgemm: within the noise floor" -- "$D" compare \
    "$T/emu-haswell.h5" "$T/emu.h5" --oracle "$T/emu64.h5"
ok "verdict agree" grep -q "^agree: .* within the noise floor" "$T/out"
ok "the sides show their arithmetic" grep -q "^ref .*; act_quant auto, attn_quant qp, kv_type f16$" "$T/out"
expect 0 "... with --exact: the arithmetic's own share" -- "$D" compare "$T/emu-haswell.h5" \
    "$T/emu.h5" --oracle "$T/emu64.h5" --exact "$T/exact64.h5"
ok "the verdict gives it" grep -q "the declared arithmetic (act_quant auto, attn_quant qp, kv_type f16) alone moves tensors up to" "$T/out"
expect 1 "the exact reference as test: diverges" -- "$D" compare "$T/exact.h5" "$T/emu.h5" \
    --oracle "$T/emu64.h5"
ok "explained by the declared arithmetic" grep -q "explained by declared arithmetic: the test declares act_quant none, attn_quant none, kv_type f32, the reference act_quant auto, attn_quant qp, kv_type f16" "$T/out"
expect 2 "an oracle of other arithmetic than the reference" -- "$D" compare "$T/exact.h5" \
    "$T/emu.h5" --oracle "$T/exact64.h5"
ok "one line naming it" one_error_line "an oracle must round as the reference does"

# attributes of every dump
expect 0 "info" -- "$D" info "$T/emu64.h5"
ok "act_quant" grep -q "act_quant.*auto" "$T/out"
ok "act_quant_types" grep -q "act_quant_types.*q8_0=q8_0" "$T/out"
ok "kv_type" grep -q "kv_type.*f16" "$T/out"
expect 0 "info exact" -- "$D" info "$T/exact.h5"
ok "exact: act_quant none, kv f32" bash -c "grep -q 'act_quant.*none' '$T/out' && grep -q 'kv_type.*f32' '$T/out'"

# a q8_0 cache: head_dim 32 takes it, 16 does not
expect 0 "q8_0 cache, head_dim 32" -- "$D" run "$T/small-q8_0.gguf" "${TK[@]}" --act-quant auto \
    --kv-type q8_0 --backend cpu-f64 --dump "$T/q8kv.h5"
expect 0 "info q8kv" -- "$D" info "$T/q8kv.h5"
ok "kv_type q8_0" grep -q "kv_type.*q8_0" "$T/out"
expect 2 "q8_0 cache, head_dim 16" -- "$D" run "$M" --kv-type q8_0
ok "one line: head_dim" one_error_line "head_dim 16"
expect 2 "q8_K on rows of 64" -- "$D" run "$M" --act-quant q8_K
ok "one line naming the tensor" one_error_line "blk.0.attn_q.weight"

# bad values and vulkan
expect 2 "bad --act-quant" -- "$D" run "$M" --act-quant q4_0
ok "one line" one_error_line "--act-quant 'q4_0': none, auto, amx, q8_0, q8_1, q8_K or f16"
expect 2 "bad --attn-quant" -- "$D" run "$M" --attn-quant qk
ok "one line" one_error_line "--attn-quant 'qk': auto, none, q, qp or vk"
expect 2 "--attn-quant vk with a q8_0 cache" -- "$D" run "$M" --attn-quant vk --kv-type q8_0
ok "one line" one_error_line "attention rounding vk is ggml-vulkan's as measured with f32 and f16 caches, not q8_0"
expect 0 "--attn-quant vk" -- "$D" run "$M" --attn-quant vk --kv-type f16 --tokens 1,2,3
ok "run prints it" grep -q "^arith    act-quant none (.*), attn-quant vk, kv cache f16$" "$T/out"
expect 2 "bad --kv-type" -- "$D" run "$M" --kv-type bf16
ok "one line" one_error_line "--kv-type 'bf16': f32, f16 or q8_0"
expect 2 "bisect: bad --kv-type" -- "$D" bisect "$M" --kv-type q4
ok "one line" one_error_line "--kv-type 'q4'"
expect 2 "vulkan refuses --act-quant" -- "$D" run "$M" --backend vulkan --act-quant auto
ok "one line" one_error_line "--act-quant auto is for the cpu backends"
expect 2 "vulkan refuses --kv-type" -- "$D" run "$M" --backend vulkan --kv-type f16
ok "one line" one_error_line "--kv-type f16 is for the cpu backends"
expect 2 "bisect: the vulkan test refuses an f16 cache" -- "$D" bisect "$M" --kv-type f16
ok "one line" one_error_line "--kv-type f16 is for the cpu backends"

# bisect: the reference and the oracle emulate, the kept dumps say so
expect 1 "bisect: exact vulkan against an emulated reference diverges" -- "$D" bisect "$M" \
    --act-quant auto --no-layer-split --keep-dumps "$T/kept"
ok "the report's arith line" grep -q "^arith    the reference and the oracle emulate act-quant auto (q8_0=q8_0), attention rounding none; KV cache f32 on all three; an exact cpu-f64 run" "$T/out"
for side in ref oracle test; do
    expect 0 "info kept $side" -- "$D" info "$T/kept/$side.h5"
    want=auto
    [ $side = test ] && want=none
    ok "kept $side: act_quant $want" grep -q "act_quant .*$want" "$T/out"
done
finish
