#!/usr/bin/env bash
# foreign.sh - `diverge compare` on a foreign engine's dumps.
#
# tests/foreign/engine.py is an independent LLaMA forward pass in numpy
# with its own GGUF reader (f32, f16, q8_0) that writes schema-v1 dumps
# with h5py. No false alarm: its clean dumps of tiny-f32, tiny-f16,
# tiny-q8_0 and stories260K agree with the cpu reference under the cpu-f64
# oracle (exit 0). Each of its deliberate bugs (--list-bugs; none of them
# one of the Vulkan fault zoo), on all layers and two of them on layer 1
# only, is found (exit 1) at the pass, layer and tensor its table declares.
# Residual-only dumps (blk.L.out, output_norm and logits, as Hugging Face's
# output_hidden_states): compare lines up what both dumps hold, lists the
# rest as only in the reference and judges that; a bug then shows at the
# first blk.L.out after it. A RoPE shift common to q and k changes no score
# (RoPE sees relative positions) and is invisible there.
# Attribution from the dumps alone (`diverge bisect --test-dump`): clean
# dumps exit 0; every bug's full dump names its op as the culprit (its
# output is not what its own dumped inputs give), every residual-only dump
# the bug's layer (its blk.L.out is not what the reference's layer makes of
# the dump's own blk.L-1.out). Then the refusals (exit 2).
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
ENGINE=$(dirname "$0")/../foreign/engine.py
TOKS=1,2,3,4,5,6,7,8,9,10,11,12,13
SCHED=6,5,1,1
[ -x "$PY" ] && "$PY" -c 'import h5py, numpy' 2>/dev/null ||
    { echo "FAIL: /usr/bin/python3 with python3-h5py and python3-numpy is needed"; exit 1; }

# op_of TENSOR: the op that makes it (the op column of bisect's table)
op_of() {
    case $1 in
    attn_norm|ffn_norm|output_norm) echo rmsnorm ;; q|k|v|attn_proj|ffn_gate|ffn_up|ffn_out) echo matmul ;;
    q_rope|k_rope) echo rope ;; kq) echo kq ;; kq_softmax) echo softmax ;; attn_out) echo kqv ;;
    ffn_in|out) echo add ;; ffn_act) echo silu_mul ;; logits) echo matmul ;; *) echo '[a-z_]+' ;;
    esac
}

# engine MODEL OUT [ARGS...]: the engine's dump of the 13-token schedule
engine() {
    local m=$1 out=$2
    shift 2
    expect 0 "engine $(basename "$out")" -- "$PY" "$ENGINE" "$m" --tokens $TOKS \
        --passes $SCHED --dump "$out" "$@"
}

# first_div WHAT PASS LAYER TENSOR: compare's output names that first
# divergence (LAYER - : outside the layers); else show the one it names
first_div() {
    local re="^first divergence: pass $2 \\(.*\\), layer $3, blk\\.$3\\.$4 \\("
    [ "$3" = - ] && re="^first divergence: pass $2 \\(.*\\), $4 \\("
    if grep -qE "$re" "$T/out"; then
        n_pass=$((n_pass + 1))
    else
        n_fail=$((n_fail + 1))
        echo "FAIL: $1: first divergence not at pass $2, layer $3, $4"
        grep "^first divergence" "$T/out" | sed 's/^/    got: /'
    fi
}

for ty in f32 f16 q8_0; do
    expect 0 "fixture tiny-$ty" -- "$D" fixture "tiny-$ty" -o "$T/tiny-$ty.gguf"
done
expect 0 "import stories260K" -- "$D" import-llama2c "$FX/data/stories260K.bin" \
    "$FX/data/tok512.bin" -o "$T/stories.gguf"

for m in tiny-f32 tiny-f16 tiny-q8_0 stories; do
    for b in cpu cpu-f64; do
        expect 0 "$m $b dump" -- "$D" run "$T/$m.gguf" --backend $b --tokens $TOKS \
            --passes $SCHED --dump "$T/$m-$b.h5"
    done
    engine "$T/$m.gguf" "$T/$m-eng.h5"
    expect 0 "$m: the engine agrees with cpu within the noise floor" -- \
        "$D" compare "$T/$m-eng.h5" "$T/$m-cpu.h5" --oracle "$T/$m-cpu-f64.h5"
    ok "$m: every tensor compared" test -z "$(grep '^alignment: ' "$T/out")"
    ok "$m: agree line" grep -q "^agree: " "$T/out"
    engine "$T/$m.gguf" "$T/$m-res.h5" --residual-only
    expect 0 "$m: residual-only agrees" -- \
        "$D" compare "$T/$m-res.h5" "$T/$m-cpu.h5" --oracle "$T/$m-cpu-f64.h5"
    for d in eng res; do
        expect 0 "$m: bisect --test-dump ($d) is clean" -- \
            "$D" bisect "$T/$m.gguf" --test-dump "$T/$m-$d.h5"
    done
done
ok "the engine leaves no .part file" test -z "$(ls -A "$T" | grep '\.part$')"
# tiny-f32: 4 passes of 2 layers; residual-only keeps 4 tensors a pass
"$D" compare "$T/tiny-f32-res.h5" "$T/tiny-f32-cpu.h5" --oracle "$T/tiny-f32-cpu-f64.h5" >"$T/out"
ok "sparse: 16 compared, the other 136 only in the reference" \
    grep -q "^alignment: 16 compared, 136 only in the reference, 0 only in the test" "$T/out"
ok "sparse: names a missing one" grep -q "^pass 0 blk.0.q: only in the reference" "$T/out"

# every bug of the engine's table, and two of them on layer 1 only; the
# table gives the first pass (for this schedule), layer and tensor
"$PY" "$ENGINE" --list-bugs --passes $SCHED | tail -n +2 >"$T/bugs"
ok "at least 8 bugs" test "$(wc -l <"$T/bugs")" -ge 8
while read -r name pass layer tensor _ <&3; do
    for spec in "$name" "$name@1"; do
        l=$layer
        case $spec in
        *@1) case $name in sigmoid-act|decode-no-kv-write) l=1 ;; *) continue ;; esac ;;
        esac
        engine "$T/tiny-f32.gguf" "$T/bug.h5" --bug "$spec"
        expect 1 "$spec: diverges" -- \
            "$D" compare "$T/bug.h5" "$T/tiny-f32-cpu.h5" --oracle "$T/tiny-f32-cpu-f64.h5"
        first_div "$spec" "$pass" "$l" "$tensor"
        ok "$spec: the report names the fault" grep -q "numpy-engine on CPU, fault $spec;" "$T/out"
        want=blk.$l.$tensor
        [ "$l" = - ] && want=$tensor
        expect 1 "$spec: bisect --test-dump" -- "$D" bisect "$T/tiny-f32.gguf" --test-dump "$T/bug.h5"
        ok "$spec: the culprit is $want" grep -qE "^  $want +$(op_of "$tensor") .* culprit$" "$T/out"
        ok "$spec: it starts there" bash -c "tr -s ' \n' ' ' <'$T/out' | grep -q 'starts there: the op is not what its own inputs in the dump give'"
        # residual-only: the first residual after the bug (output_norm stays)
        engine "$T/tiny-f32.gguf" "$T/bug-res.h5" --bug "$spec" --residual-only
        if [ "$name" = rope-pos-off ]; then
            expect 0 "$spec: residual-only cannot see a common RoPE shift" -- \
                "$D" compare "$T/bug-res.h5" "$T/tiny-f32-cpu.h5" --oracle "$T/tiny-f32-cpu-f64.h5"
            continue
        fi
        expect 1 "$spec: residual-only diverges" -- \
            "$D" compare "$T/bug-res.h5" "$T/tiny-f32-cpu.h5" --oracle "$T/tiny-f32-cpu-f64.h5"
        rt=out
        [ "$l" = - ] && rt=$tensor
        first_div "$spec: residual-only" "$pass" "$l" "$rt"
        expect 1 "$spec: bisect --test-dump, residual-only" -- \
            "$D" bisect "$T/tiny-f32.gguf" --test-dump "$T/bug-res.h5"
        if [ "$l" = - ]; then
            ok "$spec: residual-only: the culprit is $tensor" grep -qE "^  $tensor .* culprit$" "$T/out"
        else
            ok "$spec: residual-only: the culprit is layer $l" \
                grep -qE "^  blk\.$l\.out +layer .* culprit$" "$T/out"
            ok "$spec: residual-only: earlier layers are not" \
                bash -c "! grep -qE '^  blk\.[0-9]+\.out +layer .* culprit$' <(grep -v '^  blk\.$l\.out' '$T/out')"
        fi
    done
done 3<"$T/bugs"

# two independent bugs in one dump: --all-culprits names both (the first
# divergence only the first)
engine "$T/tiny-f32.gguf" "$T/two.h5" --bug rope-pos-off@0,sigmoid-act@1
expect 1 "two bugs: --all-culprits" -- "$D" bisect "$T/tiny-f32.gguf" --test-dump "$T/two.h5" \
    --all-culprits --format json -o "$T/two.json"
ok "both named" "$PY" - "$T/two.json" <<'PY'
import json, sys
names = {c["tensor"] for c in json.load(open(sys.argv[1]))["all_culprits"]}
print(sorted(names))
sys.exit(0 if {"blk.0.q_rope", "blk.1.ffn_act"} <= names and not any(
    n.startswith("blk.1.") and n != "blk.1.ffn_act" for n in names) else 1)
PY

# bisect --test-dump refuses, one line, exit 2: a dump of another model,
# flags that would choose another schedule, a file that is not a dump
expect 2 "a dump of another model" -- "$D" bisect "$T/stories.gguf" --test-dump "$T/tiny-f32-eng.h5"
ok "one line naming it" one_error_line "tiny-f32-eng.h5 is a dump of another model"
expect 2 "--test-dump with --tokens" -- "$D" bisect "$T/tiny-f32.gguf" \
    --test-dump "$T/tiny-f32-eng.h5" --tokens 1,2
ok "says why" grep -q "^diverge bisect: --test-dump takes its tokens and passes from the dump" "$T/err"
expect 2 "not a dump" -- "$D" bisect "$T/tiny-f32.gguf" --test-dump "$T/tiny-f32.gguf"
ok "one line naming the file" one_error_line "tiny-f32.gguf"

# the engine's refusals: one line, exit 2, nothing written
expect 0 "fixture tiny-q4_0" -- "$D" fixture tiny-q4_0 -o "$T/tiny-q4_0.gguf"
expect 2 "q4_0 weights" -- "$PY" "$ENGINE" "$T/tiny-q4_0.gguf" --tokens 1,2 --dump "$T/x.h5"
ok "names the type" grep -q "^engine.py: .*tiny-q4_0.gguf: tensor .* is q4_0: this engine reads f32, f16 and q8_0 only$" "$T/err"
head -c 3000 "$T/tiny-f32.gguf" >"$T/cut.gguf"
expect 2 "cut GGUF" -- "$PY" "$ENGINE" "$T/cut.gguf" --tokens 1,2 --dump "$T/x.h5"
ok "cut: one line" test "$(wc -l <"$T/err")" -eq 1
expect 2 "unknown bug" -- "$PY" "$ENGINE" "$T/tiny-f32.gguf" --tokens 1,2 --dump "$T/x.h5" --bug nope
expect 2 "a bug on a layer it cannot touch" -- "$PY" "$ENGINE" "$T/tiny-f32.gguf" \
    --tokens 1,2 --dump "$T/x.h5" --bug layer0-cache@0
expect 2 "passes that do not split the tokens" -- "$PY" "$ENGINE" "$T/tiny-f32.gguf" \
    --tokens 1,2 --passes 1,2 --dump "$T/x.h5"
ok "nothing written" test ! -e "$T/x.h5"
finish
