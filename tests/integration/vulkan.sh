#!/usr/bin/env bash
# vulkan.sh - `diverge run --backend vulkan` end to end: the run itself,
# dumps with the CPU reference's tensor set, bit-identical dumps from two
# runs, the inject attribute, the layer split, and the exit statuses of
# bad options and of a machine without a Vulkan device.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3

expect 0 "fixture" -- "$D" fixture small-q4_k -o "$T/m.gguf"
expect 0 "run on the device" -- "$D" run "$T/m.gguf" --backend vulkan --tokens 1,5,9,3,7,11 \
    --passes 4,1,1 --generate 3
ok "backend named with its device" grep -q "^backend  vulkan on " "$T/out"
ok "tokens generated" grep -q "^generated 3 tokens" "$T/out"
grep "^generated" "$T/out" >"$T/gen-vk"
expect 0 "run on the cpu" -- "$D" run "$T/m.gguf" --tokens 1,5,9,3,7,11 --passes 4,1,1 --generate 3
grep "^generated" "$T/out" >"$T/gen-cpu"
ok "same greedy tokens as the cpu reference" cmp -s "$T/gen-vk" "$T/gen-cpu"

# dumps: the cpu's tensor set; two runs give the same bits
for f in a b; do
    expect 0 "vulkan dump $f" -- "$D" run "$T/m.gguf" --backend vulkan --tokens 1,5,9,3,7,11 \
        --passes 4,1,1 --dump "$T/$f.h5"
done
expect 0 "cpu dump" -- "$D" run "$T/m.gguf" --tokens 1,5,9,3,7,11 --passes 4,1,1 --dump "$T/c.h5"
cat >"$T/cmp.py" <<'PY'
import sys, h5py, numpy as np
def tensors(path):
    out = {}
    with h5py.File(path, "r") as f:
        for p in f["passes"]:
            for n, d in f["passes"][p].items():
                out[(p, n)] = d[()]
        return out, dict(f.attrs)
a, aa = tensors(sys.argv[1]); b, _ = tensors(sys.argv[2]); c, _ = tensors(sys.argv[3])
assert a.keys() == c.keys(), "vulkan and cpu dumps hold different tensors"
diff = [k for k in a if a[k].tobytes() != b[k].tobytes()]
assert not diff, "runs differ in %s" % (diff[:3],)
assert aa["backend"] == "vulkan", aa["backend"]
print("%d tensors, bit-identical across runs, inject=%r" % (len(a), aa.get("inject")))
PY
expect 0 "dumps: same set as cpu, bit-identical" -- "$PY" "$T/cmp.py" "$T/a.h5" "$T/b.h5" "$T/c.h5"
expect 0 "info on the vulkan dump" -- "$D" info "$T/a.h5"
ok "info shows the backend" grep -q "backend.*vulkan" "$T/out"

# fault injection: recorded in the dump, changes the output
expect 0 "inject" -- "$D" run "$T/m.gguf" --backend vulkan --tokens 1,5,9,3,7,11 --passes 4,1,1 \
    --inject gqa-map@2 --dump "$T/f.h5"
ok "fault announced" grep -q "^inject   gqa-map@2: " "$T/out"
expect 0 "inject attribute" -- "$D" info "$T/f.h5"
ok "info shows inject gqa-map@2" grep -q "inject.*gqa-map@2" "$T/out"
expect 0 "run --help lists the faults" -- "$D" run --help
for f in mask-no-past rope-neox-swap rope-base matmul-k-tail softmax-no-scale f16-accum \
         q4k-scale gqa-map rmsnorm-eps kv-stale; do
    ok "help lists $f" grep -q "  $f " "$T/out"
done

# layer split
expect 0 "gpu-layers 2" -- "$D" run "$T/m.gguf" --backend vulkan --gpu-layers 2 --tokens 1,5,9 \
    --generate 3
ok "split announced" grep -q "^split    layers 0-1 on the device, 2-5 on the cpu reference" "$T/out"
grep "^generated" "$T/out" >"$T/gen-split"
expect 0 "cpu for the split" -- "$D" run "$T/m.gguf" --tokens 1,5,9 --generate 3
grep "^generated" "$T/out" >"$T/gen-cpu3"
ok "split: same greedy tokens" cmp -s "$T/gen-split" "$T/gen-cpu3"

# bad options: exit 2, one line
expect 2 "inject on the cpu" -- "$D" run "$T/m.gguf" --inject kv-stale
ok "says it needs vulkan" grep -q "^diverge run: .*need --backend vulkan" "$T/err"
expect 2 "unknown fault" -- "$D" run "$T/m.gguf" --backend vulkan --inject kv-fresh
ok "one error line naming the fault" one_error_line "kv-fresh"
expect 2 "fault layer out of range" -- "$D" run "$T/m.gguf" --backend vulkan --inject kv-stale@6
expect 2 "bad gpu-layers" -- "$D" run "$T/m.gguf" --backend vulkan --gpu-layers x
expect 3 "no such device" -- "$D" run "$T/m.gguf" --backend vulkan --device no-such-gpu
ok "one error line naming it" one_error_line "no-such-gpu"
# no Vulkan driver at all: exit 3, one line that says how to get lavapipe
expect 3 "no driver" -- env VK_ICD_FILENAMES=/nonexistent.json VK_DRIVER_FILES=/nonexistent.json \
    "$D" run "$T/m.gguf" --backend vulkan
ok "no-device line names lavapipe" one_error_line "mesa-vulkan-drivers"
finish
