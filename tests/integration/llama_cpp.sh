#!/usr/bin/env bash
# llama_cpp.sh - `diverge run --backend llama.cpp[:DEVICE]` end to end, on
# llama.cpp's CPU and on its Vulkan backend (lavapipe in CI).
#
# Every fixture type, stories260K and llama.cpp's mini-llama, 13 tokens in
# passes 6,5,1,1: the dump holds every tensor of the table for every pass
# (llama_cpp_check.py: names, shapes, layer/op/order, the mask, finite
# values) within a tolerance of the cpu reference's dump that says what
# llama.cpp's arithmetic is (see TOL below). On f32 weights llama.cpp's CPU
# agrees with the reference within the noise floor of the cpu-f64 oracle;
# a wrong RoPE base (the test hook DIVERGE_LLAMA_CPP_ROPE_BASE) is found at
# blk.0.q_rope. mini-llama's logits match the ones llama.cpp's own CPU
# wrote (fixtures/data). Then the dump attributes, flash attention, the
# layer split, greedy text, the flags and the failures: no library (exit
# 3), a library without llama.cpp's functions (3), an unknown device (2).
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
CHECK=$(dirname "$0")/llama_cpp_check.py
TOKS=1,2,3,4,5,6,7,8,9,10,11,12,13
SCHED=6,5,1,1
# Relative RMS error of any tensor against the cpu reference (measured
# worst in brackets, this release on x86-64 and lavapipe 22.3.6):
#  - CPU, f32 weights: the same f32 arithmetic in another order, about
#    1e-6 [2.1e-6];
#  - CPU, quantized weights: llama.cpp quantizes the activations to 8 bits
#    inside the products (q8_0/q8_K), a few percent after two layers
#    [0.064]; f16 weights round them to f16 [2.9e-4] (on a CPU with AMX:
#    exact f32, act_quant amx);
#  - Vulkan on lavapipe: passes of more than one token round q, K, V and
#    the probabilities to f16 inside the attention products (attn_quant
#    vk, judged exactly below) [5.7e-3].
# A wrong layout, scale or mask gives errors near 1.
TOL_CPU=1e-4 TOL_CPU_Q=0.2 TOL_VK=0.02
[ -x "$PY" ] && "$PY" -c 'import h5py' 2>/dev/null ||
    { echo "FAIL: /usr/bin/python3 with python3-h5py is needed"; exit 1; }

# check WHAT TOL TEST.h5 REF.h5 [--flash]: the dump is complete and close
check() {
    local what=$1 tol=$2
    shift 2
    if "$PY" "$CHECK" "$1" "$2" "$tol" "${@:3}" >"$T/check" 2>&1; then
        n_pass=$((n_pass + 1))
    else
        n_fail=$((n_fail + 1))
        echo "FAIL: $what"
        head -8 "$T/check"
    fi
}

# run_dump MODEL BACKEND OUT [ARGS...]: the 13-token schedule into OUT;
# llama.cpp with an f32 cache (its own default f16 is tested below, as
# declared arithmetic), unless ARGS name one, and on one CPU thread (tests
# run two at a time on two cores, and ggml's threads wait spinning)
run_dump() {
    local m=$1 b=$2 out=$3 kv=() th=()
    shift 3
    [[ $b == llama.cpp* && " $* " != *" --kv-type "* ]] && kv=(--kv-type f32)
    [[ $b == llama.cpp* ]] && th=(--threads 1)
    expect 0 "$(basename "$m") on $b" -- "$D" run "$m" --backend "$b" --tokens $TOKS \
        --passes $SCHED --dump "$out" "${kv[@]}" "${th[@]}" "$@"
}

for ty in f32 f16 q8_0 q4_0 q4_k q6_k; do
    expect 0 "fixture tiny-$ty" -- "$D" fixture "tiny-$ty" -o "$T/tiny-$ty.gguf"
done
expect 0 "import stories260K" -- "$D" import-llama2c "$FX/data/stories260K.bin" \
    "$FX/data/tok512.bin" -o "$T/stories.gguf"
cp "$FX/data/mini-llama-q8_0.gguf" "$T/mini.gguf"

for m in tiny-f32 tiny-f16 tiny-q8_0 tiny-q4_0 tiny-q4_k tiny-q6_k stories mini; do
    run_dump "$T/$m.gguf" cpu "$T/$m-cpu.h5"
    run_dump "$T/$m.gguf" llama.cpp:CPU "$T/$m-lc.h5"
    run_dump "$T/$m.gguf" llama.cpp:Vulkan0 "$T/$m-vk.h5"
    case $m in tiny-f32|stories) tol=$TOL_CPU ;; *) tol=$TOL_CPU_Q ;; esac
    check "$m: llama.cpp CPU dump" "$tol" "$T/$m-lc.h5" "$T/$m-cpu.h5"
    check "$m: llama.cpp Vulkan0 dump" $TOL_VK "$T/$m-vk.h5" "$T/$m-cpu.h5"
done
ok "the run names llama.cpp's device" grep -q "^backend  llama.cpp on Vulkan0: " "$T/out"

# f32 weights: llama.cpp's CPU within the reference's own noise floor
for m in tiny-f32 stories; do
    run_dump "$T/$m.gguf" cpu-f64 "$T/$m-f64.h5"
    expect 0 "$m: llama.cpp CPU agrees with cpu under the oracle" -- \
        "$D" compare "$T/$m-lc.h5" "$T/$m-cpu.h5" --oracle "$T/$m-f64.h5"
done
# llama.cpp's own arithmetic on its CPU: its default f16 cache and, on
# quantized weights, 8-bit activations. Against a reference and an oracle
# that emulate it (--act-quant auto, or amx, --kv-type f16), with the exact f64 run
# for the declared share, every model agrees: no false alarm. Against the
# exact reference the same dump diverges, and the verdict says that the
# declared arithmetic explains it.
for m in tiny-f32 tiny-f16 tiny-q8_0 tiny-q4_0 tiny-q4_k tiny-q6_k stories mini; do
    run_dump "$T/$m.gguf" llama.cpp:CPU "$T/$m-lcd.h5" --kv-type f16
    # auto, or amx where ggml's CPU backend has AMX (llama_cpp.c)
    aq=$("$PY" -c "import h5py, sys; print(h5py.File(sys.argv[1], 'r').attrs['act_quant'])" \
        "$T/$m-lcd.h5")
    case $aq in auto|amx) ;; *) echo "FAIL: $m: llama.cpp CPU declares act_quant '$aq'"; n_fail=$((n_fail + 1)) ;; esac
    for b in cpu cpu-f64; do
        run_dump "$T/$m.gguf" $b "$T/$m-$b-emu.h5" --act-quant "$aq" --kv-type f16
    done
    [ -f "$T/$m-f64.h5" ] || run_dump "$T/$m.gguf" cpu-f64 "$T/$m-f64.h5"
    expect 0 "$m: llama.cpp CPU agrees with the emulated reference" -- "$D" compare \
        "$T/$m-lcd.h5" "$T/$m-cpu-emu.h5" --oracle "$T/$m-cpu-f64-emu.h5" --exact "$T/$m-f64.h5"
    ok "$m: the report shows the declared share" grep -q "err(ref, exact)  declared" "$T/out"
    expect 1 "$m: against the exact reference it diverges" -- "$D" compare \
        "$T/$m-lcd.h5" "$T/$m-cpu.h5" --oracle "$T/$m-f64.h5"
    ok "$m: explained by declared arithmetic" grep -q "explained by declared arithmetic" "$T/out"
done
# llama.cpp's Vulkan backend on lavapipe declares what it was measured to
# compute (llama_cpp.c, lc_arith): weights in f32 (passes of up to 8
# tokens) and attn_quant vk, f16 copies of q, K, V and the probabilities
# in the attention products of passes of more than one token, summed in
# f16 with an f16 cache (bit for bit: test_cpu_ops.c). Against a reference
# and an oracle that emulate it every model agrees, with llama.cpp's
# default f16 cache and with the f32 one; against the exact reference the
# f16 dump diverges, explained by the declared arithmetic.
for m in tiny-f32 tiny-f16 tiny-q8_0 tiny-q4_0 tiny-q4_k tiny-q6_k stories mini; do
    run_dump "$T/$m.gguf" llama.cpp:Vulkan0 "$T/$m-vkd.h5" --kv-type f16
    ok "$m: the Vulkan dump declares attn_quant vk" "$PY" -c "import h5py, sys
a = h5py.File(sys.argv[1], 'r').attrs
sys.exit(0 if (a['act_quant'], a['attn_quant'], a['kv_type']) == ('none', 'vk', 'f16') else 1)" \
        "$T/$m-vkd.h5"
    for kv in f16 f32; do
        for b in cpu cpu-f64; do
            run_dump "$T/$m.gguf" $b "$T/$m-$b-vk$kv.h5" --attn-quant vk --kv-type $kv
        done
    done
    expect 0 "$m: llama.cpp Vulkan (f16 cache) agrees with the emulated reference" -- \
        "$D" compare "$T/$m-vkd.h5" "$T/$m-cpu-vkf16.h5" --oracle "$T/$m-cpu-f64-vkf16.h5" \
        --exact "$T/$m-f64.h5"
    expect 0 "$m: llama.cpp Vulkan (f32 cache) agrees with the emulated reference" -- \
        "$D" compare "$T/$m-vk.h5" "$T/$m-cpu-vkf32.h5" --oracle "$T/$m-cpu-f64-vkf32.h5" \
        --exact "$T/$m-f64.h5"
    expect 1 "$m: Vulkan against the exact reference diverges" -- "$D" compare \
        "$T/$m-vkd.h5" "$T/$m-cpu.h5" --oracle "$T/$m-f64.h5"
    ok "$m: Vulkan: explained by declared arithmetic" grep -q "explained by declared arithmetic" "$T/out"
done
# what was not measured declares nothing: flash attention, a pass of more
# than 8 tokens (the weights then take f16 products), a layer split
for args in "--flash-attn on" "--passes 9,4" "--gpu-layers 1"; do
    # shellcheck disable=SC2086
    expect 0 "Vulkan $args" -- "$D" run "$T/tiny-f32.gguf" --backend llama.cpp:Vulkan0 \
        --tokens $TOKS --threads 1 --dump "$T/undeclared.h5" $args
    ok "Vulkan $args: act_quant and attn_quant unknown" "$PY" -c "import h5py, sys
a = h5py.File(sys.argv[1], 'r').attrs
sys.exit(0 if (a['act_quant'], a['attn_quant']) == ('unknown', 'unknown') else 1)" \
        "$T/undeclared.h5"
done
# bisect with llama.cpp's Vulkan as the test emulates what it declares
expect 0 "bisect llama.cpp:Vulkan0 on mini" -- "$D" bisect "$T/mini.gguf" --test llama.cpp:Vulkan0
ok "bisect Vulkan: clean" grep -q "^clean: no divergence above the noise floor" "$T/out"
ok "bisect Vulkan: emulates attn vk" \
    grep -q "^arith    the reference and the oracle emulate act-quant none (q8_0=none), attention rounding vk; KV cache f16" "$T/out"
# bisect with llama.cpp as the test: the reference and the oracle emulate
# what llama.cpp's CPU declares, an exact run gives the declared share;
# clean on a quantized model; a wrong RoPE base is named at the first
# tensor it touches, and bisect says the op is not isolated
expect 0 "bisect llama.cpp:CPU on tiny-q8_0" -- "$D" bisect "$T/tiny-q8_0.gguf" \
    --test llama.cpp:CPU --keep-dumps "$T/bq"
ok "bisect: clean" grep -q "^clean: no divergence above the noise floor" "$T/out"
ok "bisect: emulates llama.cpp's CPU" \
    grep -q "^arith    the reference and the oracle emulate act-quant auto (q8_0=q8_0), attention rounding qp; KV cache f16" "$T/out"
ok "bisect: keeps the exact run" test -s "$T/bq/exact.h5"
expect 1 "bisect: a wrong RoPE base" -- env DIVERGE_LLAMA_CPP_ROPE_BASE=5000 "$D" bisect \
    "$T/tiny-q8_0.gguf" --test llama.cpp:CPU
ok "bisect: at blk.0.q_rope" grep -q "It shows" "$T/out"
ok "bisect: names the tensor" bash -c "tr '\n' ' ' < '$T/out' | grep -q 'at blk.0.q_rope (rope)'"
ok "bisect: replays the op alone on llama.cpp" grep -qE "^  blk\.0\.q_rope +rope .* culprit$" "$T/out"
ok "bisect: names the ggml op" bash -c "tr -s ' \n' ' ' < '$T/out' | grep -q 'starts there: the op diverges alone on the test backend with the reference.s inputs .* ggml: ROPE'"
ok "bisect: the attention products are not replayed" grep -qE "^  blk\.0\.kq +kq .* not replayed$" "$T/out"
for dev in CPU Vulkan0; do
    expect 1 "bisect llama.cpp:$dev with a wrong RoPE base, --export-case" -- env \
        DIVERGE_LLAMA_CPP_ROPE_BASE=5000 "$D" bisect "$T/mini.gguf" --test "llama.cpp:$dev" \
        --export-case "$T/lcase-$dev"
    ok "$dev: the culprit is blk.0.q_rope" grep -qE "^  blk\.0\.q_rope +rope .* culprit$" "$T/out"
    ok "$dev: no other op of layer 0 diverges alone before it" \
        bash -c "! grep -qE '^  blk\.0\.(attn_norm|q|k|v) .* (culprit|diverges alone too)$' '$T/out'"
    expect 1 "$dev: the case replays alone" -- "$D" bisect "$T/mini.gguf" \
        --test-dump "$T/lcase-$dev/case.h5"
    ok "$dev: the case names blk.0.q_rope" grep -qE "^  blk\.0\.q_rope +rope .* culprit$" "$T/out"
done
expect 2 "bisect: --test llama.cpp:Nope" -- "$D" bisect "$T/tiny-q8_0.gguf" --test llama.cpp:Nope
# attribution from llama.cpp's dumps alone: the clean CPU (f16 cache) and
# Vulkan dumps of mini-llama are clean under the arithmetic they declare;
# a wrong RoPE base is named at the rope op, from the dump's own inputs
for d in mini-lcd mini-vkd; do
    expect 0 "bisect --test-dump $d" -- "$D" bisect "$T/mini.gguf" --test-dump "$T/$d.h5"
done
DIVERGE_LLAMA_CPP_ROPE_BASE=5000 run_dump "$T/mini.gguf" llama.cpp:CPU "$T/mini-rope.h5" \
    --kv-type f16
expect 1 "bisect --test-dump of a wrong RoPE base" -- "$D" bisect "$T/mini.gguf" \
    --test-dump "$T/mini-rope.h5"
ok "the culprit is blk.0.q_rope" grep -qE "^  blk\.0\.q_rope +rope .* culprit$" "$T/out"
expect 1 "--export-case from the llama.cpp dump" -- "$D" bisect "$T/mini.gguf" \
    --test-dump "$T/mini-rope.h5" --export-case "$T/rcase"
expect 1 "the case replays alone" -- "$D" bisect "$T/mini.gguf" --test-dump "$T/rcase/case.h5"
ok "and names blk.0.q_rope" grep -qE "^  blk\.0\.q_rope +rope .* culprit$" "$T/out"
ok "it starts there" bash -c "tr -s ' \n' ' ' <'$T/out' | grep -q 'starts there: the op is not what its own inputs in the dump give'"
# a wrong RoPE base: the first divergence is the first rope tensor
DIVERGE_LLAMA_CPP_ROPE_BASE=5000 run_dump "$T/tiny-f32.gguf" llama.cpp:CPU "$T/rope.h5"
ok "the run says the base is overridden" grep -q "RoPE base overridden to 5000" "$T/out"
expect 1 "rope base 5000 is found" -- "$D" compare "$T/rope.h5" "$T/tiny-f32-cpu.h5" \
    --oracle "$T/tiny-f32-f64.h5"
ok "first divergence at blk.0.q_rope" \
    grep -q "^first divergence: pass 0 (pos0 0, 6 tokens), layer 0, blk.0.q_rope (rope)" "$T/out"
expect 0 "info of the rope dump" -- "$D" info "$T/rope.h5"
ok "the dump records the override" grep -qE "^ *llama_cpp_rope_base_override *= 5000$" "$T/out"
expect 2 "a base that is not a number" -- env DIVERGE_LLAMA_CPP_ROPE_BASE=x "$D" run \
    "$T/tiny-f32.gguf" --backend llama.cpp:CPU
ok "one line naming the variable" one_error_line DIVERGE_LLAMA_CPP_ROPE_BASE

# mini-llama's logits, one pass, against llama.cpp's own CPU run
# (fixtures/data/mini-llama-q8_0.llamacpp-logits.bin: flash attention off,
# f32 KV). Same quantized arithmetic, another build and CPU variant: they
# differ in the last bits only (max 1.2e-7, nmse 5e-15 seen), while any
# change of what is computed moves nmse to 1e-4 and up (the activation
# quantization alone is 1.3e-4 from exact). So: max |a-b| <= 1e-5,
# nmse <= 1e-10, the same top-1 token at every position.
expect 0 "mini-llama, one pass on llama.cpp CPU" -- "$D" run "$T/mini.gguf" \
    --backend llama.cpp:CPU --tokens 1,9038,2501,263,931 --dump "$T/mini1.h5" --threads 1 \
    --kv-type f32
ok "logits as llama.cpp's own run" "$PY" - "$T/mini1.h5" \
    "$FX/data/mini-llama-q8_0.llamacpp-logits.bin" <<'EOF'
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["passes/0000/logits"][()].astype(np.float64)
raw = open(sys.argv[2], "rb").read()
assert b"tokens: 1 9038 2501 263 931" in raw[:1024] and b"flash_attn: off" in raw[:1024]
b = np.frombuffer(raw[1024:], dtype="<f4").reshape(5, 32000).astype(np.float64)
d = a - b
mx, nmse = np.abs(d).max(), (d * d).sum() / (b * b).sum()
print(f"max |a-b| {mx:.3g}, nmse {nmse:.3g}")
sys.exit(0 if mx <= 1e-5 and nmse <= 1e-10 and (a.argmax(1) == b.argmax(1)).all() else 1)
EOF

# the backend's own attributes, listed by `diverge info`
expect 0 "info of a Vulkan0 dump" -- "$D" info "$T/tiny-f32-vk.h5"
for kv in 'ggml_device *= "Vulkan0"' 'ggml_backend *= "Vulkan"' 'llama_cpp_type_k *= "f32"' \
          'llama_cpp_type_v *= "f32"' 'llama_cpp_flash_attn *= "off"' \
          'ggml_version *= "[0-9]' 'ggml_commit *= "' 'llama_cpp_n_gpu_layers *= 3$' \
          'backend *= "llama.cpp"' 'device *= "Vulkan0: '; do
    ok "attribute $kv" grep -qE "^ *$kv" "$T/out"
done
ok "no override recorded" bash -c "! grep -q rope_base_override '$T/out'"

# flash attention: kq and kq_softmax are fused away, the rest is there
for dev in CPU Vulkan0; do
    run_dump "$T/tiny-f32.gguf" "llama.cpp:$dev" "$T/fa-$dev.h5" --flash-attn on
    check "flash attention on $dev" $TOL_VK "$T/fa-$dev.h5" "$T/tiny-f32-cpu.h5" --flash
done
# llama.cpp's n_gpu_layers: 2 of tiny's 2 layers is layer 1 and the output
run_dump "$T/tiny-f32.gguf" llama.cpp:Vulkan0 "$T/split.h5" --gpu-layers 2
ok "the split, as llama.cpp places it" \
    grep -q "^split    llama.cpp n_gpu_layers 2: layers 1-1 and the output on the device, 0-0 on the CPU" "$T/out"
check "split dump" $TOL_VK "$T/split.h5" "$T/tiny-f32-cpu.h5"
expect 0 "--gpu-layers 0" -- "$D" run "$T/tiny-f32.gguf" --backend llama.cpp:Vulkan0 --gpu-layers 0
ok "everything on the CPU" grep -q "^split    llama.cpp n_gpu_layers 0: everything on the CPU" "$T/out"

# greedy decoding, one token per call on the cache, as llama2.c prints it
want="Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
for dev in CPU Vulkan0; do
    expect 0 "generate on llama.cpp:$dev" -- "$D" run "$T/stories.gguf" \
        --backend "llama.cpp:$dev" --prompt "Once upon a time" --passes 2,2,1 --generate 36 \
        --threads 1
    ok "llama.cpp:$dev text" grep -qF "text: $want" "$T/out"
done
# the default device is a GPU, never a CPU-type Vulkan device, else CPU;
# the default threads are llama.cpp's 4, or fewer for fewer CPUs
expect 0 "default device" -- "$D" run "$T/tiny-f32.gguf" --backend llama.cpp --dump "$T/def.h5"
ok "not lavapipe by default" bash -c "! grep -q '^backend  llama.cpp on Vulkan[0-9]*: llvmpipe' '$T/out'"
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) # the CPUs we may use
expect 0 "info of the default run" -- "$D" info "$T/def.h5"
ok "default threads" grep -qE "^ *llama_cpp_n_threads *= $((cpus < 4 ? cpus : 4))$" "$T/out"

# flags: bad values and flags for the wrong backend, one line, exit 2
while read -r what args; do
    # shellcheck disable=SC2086
    expect 2 "$what" -- "$D" run "$T/tiny-f32.gguf" $args
    ok "$what: one line" test "$(grep -c '^diverge' "$T/err")" -eq 1
done <<'EOF'
flash-attn-value --backend llama.cpp:CPU --flash-attn maybe
threads-zero --backend llama.cpp:CPU --threads 0
threads-huge --backend llama.cpp:CPU --threads 5000
threads-on-cpu --backend cpu --threads 2
flash-on-vulkan --backend vulkan --flash-attn on
empty-device --backend llama.cpp:
device-flag --backend llama.cpp --device 0
inject --backend llama.cpp:CPU --inject rope-base
split-on-cpu --backend llama.cpp:CPU --gpu-layers 1
gpu-layers-on-cpu-backend --backend cpu --gpu-layers 1
EOF
expect 2 "unknown device" -- "$D" run "$T/tiny-f32.gguf" --backend llama.cpp:Vulkan7
ok "one line listing the devices" one_error_line "no device 'Vulkan7'; this llama.cpp has .*CPU ("

# no llama.cpp where we are told to look, or not a llama.cpp there
expect 3 "no library" -- env DIVERGE_LLAMA_CPP_LIBDIR=/nonexistent "$D" run "$T/tiny-f32.gguf" \
    --backend llama.cpp
ok "one line naming the directory" one_error_line "llama.cpp: no libllama.so in /nonexistent"
mkdir -p "$T/notllama" "$T/junk"
ln -s "$(ldconfig -p | sed -n 's/.*libm.so.6 (libc6,x86-64) => //p' | head -n 1)" \
    "$T/notllama/libllama.so"
expect 3 "a library without llama.cpp's functions" -- env DIVERGE_LLAMA_CPP_LIBDIR="$T/notllama" \
    "$D" run "$T/tiny-f32.gguf" --backend llama.cpp
ok "one line naming the function" one_error_line "notllama/libllama.so has no function llama_"
echo "not a library" >"$T/junk/libllama.so"
expect 3 "a file that is not a library" -- env DIVERGE_LLAMA_CPP_LIBDIR="$T/junk" \
    "$D" run "$T/tiny-f32.gguf" --backend llama.cpp
ok "one line: cannot load" one_error_line "cannot load $T/junk/libllama.so"
finish
