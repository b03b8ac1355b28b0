#!/usr/bin/env bash
# bad_dump.sh - `diverge info` on dump files. A valid dump written with
# h5py (an independent writer, as an engine's own tooling would use) is
# described; broken dumps, truncated at many lengths or with one thing
# wrong, give exit status 2 and one error line naming the file, never a
# crash (run it under ASan/UBSan too). Without h5py only the files made
# here by hand are tried.
. "$(dirname "$0")/lib.sh"

check() {
    expect 2 "$1" -- "$D" info "$T/$1.h5"
    ok "$1: one line naming the file" one_error_line "$1.h5"
    [ -z "${2:-}" ] || ok "$1: says '$2'" grep -qF -- "$2" "$T/err"
}

# no HDF5 signature: taken for GGUF, which reports it (bad_gguf.sh)
printf 'hello' >"$T/text.h5"; check text
: >"$T/empty.h5"; check empty
mkdir "$T/dir.h5"; check dir
check missing "No such file or directory"
# the signature and nothing more, or junk after it
printf '\211HDF\r\n\032\n' >"$T/signature.h5"; check signature "cannot open as HDF5"
{ printf '\211HDF\r\n\032\n'; head -c 4096 /dev/zero | tr '\0' 'x'; } >"$T/sig-junk.h5"
check sig-junk "cannot open as HDF5"

# /usr/bin/python3: Debian's, with python3-h5py (a pyenv python3 on PATH
# may lack it)
PY=/usr/bin/python3
if ! "$PY" -c 'import h5py' 2>/dev/null; then
    echo "h5py not available: skipping the h5py-made dumps"
    finish
    exit
fi

# mk.py OUT VARIANT: a dump of a tiny model (vocab 32, d 8, 2 layers,
# 2 heads, 1 kv head, ffn 16), one pass of 3 tokens, or it with one
# thing broken.
cat >"$T/mk.py" <<'PY'
import sys
import h5py
import numpy as np
out, v = sys.argv[1], sys.argv[2]
with h5py.File(out, "w") as f:
    a = f.attrs
    if v != "no-schema":
        a["schema"] = "diverge-dump"
    a["schema_version"] = 2 if v == "version2" else 1
    a["tool_version"] = "h5py"
    a["created_utc"] = "2024-01-02T03:04:05Z"
    a["backend"] = "other-engine"
    a["arch"] = "llama"
    for k, x in dict(n_vocab=32, n_embd=8, n_layer=2, n_head=2, n_head_kv=1, n_ff=16).items():
        a[k] = x
    a["rms_eps"] = np.float32(1e-5)
    a["engine.build"] = "abc123"
    p = f.create_group("passes/0000")
    p.attrs["pos0"] = 0
    p.attrs["n_tokens"] = 3
    p["tokens"] = np.array([1, 5, 40 if v == "token-oov" else 31], dtype=np.int32)
    def put(name, x, layer, op, order):
        d = p.create_dataset(name, data=x)
        d.attrs["layer"] = layer
        d.attrs["op"] = op
        d.attrs["order"] = order
    x = (np.arange(24, dtype=np.float32).reshape(3, 8) - 12) / 4
    put("blk.0.attn_norm", x, 0, "rmsnorm", 1)
    kq = np.full((2, 3, 2 if v == "kq-shape" else 3), 0.5, dtype=np.float32)
    kq[:, 0, 1:] = -np.inf
    put("blk.1.kq", kq, 1, "kq", 20)
    logits = np.linspace(-2, 2, 96).reshape(3, 32).astype(np.float16)
    logits[2, 5] = np.nan
    if v == "int-tensor":
        logits = np.nan_to_num(logits).astype(np.int32)
    put("logits", logits, -1, "matmul", 40)
    if v == "subgroup":
        p.create_group("extra")
PY

make() { "$PY" "$T/mk.py" "$T/$1.h5" "$1" || { echo "FAIL: h5py could not write $1"; exit 1; }; }

make good
expect 0 "info on an h5py dump" -- "$D" info "$T/good.h5"
ok "header" grep -q "good.h5: diverge-dump v1, 1 pass, 3 tensors" "$T/out"
ok "extra attribute" grep -qE '^  engine.build += "abc123"$' "$T/out"
ok "config" grep -q "config (llama): d_model 8, layers 2, heads 2, kv heads 1, head_dim 4" "$T/out"
ok "pass line" grep -q "^pass 0000  pos0 0  tokens 3: 1 5 31$" "$T/out"
ok "attn_norm row" grep -qE "^ +1  blk.0.attn_norm +0  rmsnorm +\[3, 8\] +f32 +-3.0000e\+00 +2.7500e\+00 .* 0 +0$" "$T/out"
ok "kq row counts -inf" grep -qE "^ +20  blk.1.kq +1  kq +\[2, 3, 3\] +f32 .* 0 +4$" "$T/out"
ok "logits row counts the NaN" grep -qE "^ +40  logits +-1  matmul +\[3, 32\] +f16 .* 1 +0$" "$T/out"
ok "nothing on stderr" test ! -s "$T/err"

for v in no-schema version2 kq-shape token-oov int-tensor subgroup; do make "$v"; done
check no-schema "not a diverge dump (no schema attribute)"
check version2 "schema version 2 is newer than this diverge reads (1)"
check kq-shape "pass 0000: tensor blk.1.kq has shape [2, 3, 2], expected [2, 3, 3]"
check token-oov "pass 0000: token 2 is 40, outside the vocabulary (0..31)"
check int-tensor "pass 0000: tensor logits is of class integer"
check subgroup "pass 0000: member 'extra' is not a dataset"

# the good dump truncated: at every byte of the first 64, then every 97th
size=$(stat -c %s "$T/good.h5")
expect_cuts_rejected "$T/good.h5" $(seq 0 63) $(seq 64 97 $((size - 1)))
finish
