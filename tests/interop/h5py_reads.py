"""h5py_reads.py - a dump written by `diverge run --dump` is what
diverge-dump(5) says, read with nothing but h5py and numpy, and the
statistics `diverge info` prints about it are numpy's.

Runs $DV_DIVERGE (the program under test): fixture tiny, then run with
--tokens 1,5,9,3 --passes 3,1 --dump, and variants with --compress /
--select / --dump-passes and the cpu-f64 backend. Exit 0 when every check
passes, 1 with one line per failure, and 1 with a clear line without h5py.
"""
import hashlib
import os
import re
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError as e:
    print("FAIL: %s (python3-h5py and python3-numpy; scripts/deps installs them)" % e)
    sys.exit(1)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dvinfo  # noqa: E402

DIVERGE = os.environ.get("DV_DIVERGE")
TOKENS = [1, 5, 9, 3]
PASSES = [(0, 3), (3, 1)]  # (pos0, n_tokens) of --passes 3,1
# design.md's table for one layer, in execution order: suffix, op, shape
LAYER_TABLE = [
    ("attn_in", "view", "TD"), ("attn_norm", "rmsnorm", "TD"), ("q", "matmul", "THhd"),
    ("k", "matmul", "TKhd"), ("v", "matmul", "TKhd"), ("q_rope", "rope", "THhd"),
    ("k_rope", "rope", "TKhd"), ("kq", "kq", "HTN"), ("kq_softmax", "softmax", "HTN"),
    ("attn_out", "kqv", "TE"), ("attn_proj", "matmul", "TD"), ("ffn_in", "add", "TD"),
    ("ffn_norm", "rmsnorm", "TD"), ("ffn_gate", "matmul", "TF"), ("ffn_up", "matmul", "TF"),
    ("ffn_act", "silu_mul", "TF"), ("ffn_out", "matmul", "TD"), ("out", "add", "TD"),
]
GLOBAL_TABLE = [("output_norm", "rmsnorm", "TD"), ("logits", "matmul", "TV")]
# the tiny fixture (diverge.1): 2 layers, d 64, 4 heads, 2 kv heads, ffn 192, vocab 256
MODEL = {"arch": "llama", "n_vocab": 256, "n_embd": 64, "n_layer": 2, "n_head": 4,
         "n_head_kv": 2, "n_ff": 192, "head_dim": 16}

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def run(*args, want=0):
    p = subprocess.run([DIVERGE, *args], capture_output=True, text=True)
    check(p.returncode == want, "diverge %s: exit %d, expected %d; stderr: %s"
          % (" ".join(args), p.returncode, want, p.stderr.strip()[:300]))
    return p


def table(n_layer):
    """[(name, layer, op, shape kind)] of one pass, in execution order."""
    out = []
    for L in range(n_layer):
        for suffix, op, kind in LAYER_TABLE:
            if suffix == "attn_in" and L == 0:
                op = "get_rows"
            out.append(("blk.%d.%s" % (L, suffix), L, op, kind))
    out += [(name, -1, op, kind) for name, op, kind in GLOBAL_TABLE]
    return out


def shape_of(kind, pos0, T, m):
    H, K, hd = m["n_head"], m["n_head_kv"], m["head_dim"]
    return {"TD": (T, m["n_embd"]), "THhd": (T, H, hd), "TKhd": (T, K, hd),
            "HTN": (H, T, pos0 + T), "TE": (T, H * hd), "TF": (T, m["n_ff"]),
            "TV": (T, m["n_vocab"])}[kind]


def check_root(f, gguf, backend):
    a = f.attrs
    kinds = {"schema": "str", "schema_version": "int", "tool_version": "str",
             "created_utc": "str", "backend": "str", "device": "str", "driver": "str",
             "model_path": "str", "model_sha256": "str", "inject": "str", "arch": "str",
             "n_vocab": "int", "n_embd": "int", "n_layer": "int", "n_head": "int",
             "n_head_kv": "int", "n_ff": "int", "head_dim": "int", "n_rot": "int",
             "n_ctx_train": "int", "rope_freq_base": "real", "rope_type": "str",
             "rms_eps": "real"}
    for key, kind in kinds.items():
        if check(key in a, "root attribute %s missing" % key):
            check(dvinfo.h5_attr_kind(f, key) == kind, "root attribute %s is %s, not %s"
                  % (key, dvinfo.h5_attr_kind(f, key), kind))
    check(a.get("schema") == "diverge-dump", "schema = %r" % a.get("schema"))
    check(a.get("schema_version") == 1, "schema_version = %r" % a.get("schema_version"))
    check(re.fullmatch(r"diverge \d+\.\d+\.\d+", str(a.get("tool_version"))),
          "tool_version = %r" % a.get("tool_version"))
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(a.get("created_utc"))),
          "created_utc = %r" % a.get("created_utc"))
    check(a.get("backend") == backend, "backend = %r" % a.get("backend"))
    for key, v in MODEL.items():
        check(a.get(key) == v, "%s = %r, expected %r" % (key, a.get(key), v))
    check(a.get("n_rot") == 16 and a.get("rope_type") == "norm",
          "rope: n_rot %r, rope_type %r" % (a.get("n_rot"), a.get("rope_type")))
    check(a.get("inject") == "", "inject = %r" % a.get("inject"))
    check(a.get("model_path") == os.path.abspath(gguf), "model_path = %r" % a.get("model_path"))
    with open(gguf, "rb") as g:
        sha = hashlib.sha256(g.read()).hexdigest()
    check(a.get("model_sha256") == sha, "model_sha256 = %r, sha256 of the file %s"
          % (a.get("model_sha256"), sha))


def check_passes(f, m, dtype, passes=(0, 1), select=None, compressed=False):
    """Every tensor of the table (or those whose name `select` keeps) in
    every kept pass, with the table's layer, op, order and shape."""
    check(list(f) == ["passes"], "root members %s" % list(f))
    groups = ["%04d" % i for i in passes]
    if not check(list(f["passes"]) == groups, "pass groups %s, expected %s"
                 % (list(f["passes"]), groups)):
        return
    all_names = table(m["n_layer"])
    for i in passes:
        pos0, T = PASSES[i]
        g = f["passes/%04d" % i]
        w = "pass %04d" % i
        check(g.attrs.get("pos0") == pos0 and g.attrs.get("n_tokens") == T,
              "%s: pos0 %r n_tokens %r" % (w, g.attrs.get("pos0"), g.attrs.get("n_tokens")))
        tok = g["tokens"]
        check(tok.dtype == np.int32 and list(tok[()]) == TOKENS[pos0:pos0 + T],
              "%s: tokens %s %r" % (w, tok.dtype, list(tok[()])))
        want = [t for t in all_names if select is None or select(t[0])]
        check(sorted(g) == sorted([t[0] for t in want] + ["tokens"]),
              "%s: members %s" % (w, sorted(set(g) ^ {t[0] for t in want} ^ {"tokens"})))
        orders = []
        for k, (name, layer, op, kind) in enumerate(all_names):
            if name not in g:
                continue
            ds, wn = g[name], "%s %s" % (w, name)
            orders.append(ds.attrs.get("order"))
            check(ds.attrs.get("layer") == layer, "%s: layer %r" % (wn, ds.attrs.get("layer")))
            check(ds.attrs.get("op") == op, "%s: op %r, expected %r" % (wn, ds.attrs.get("op"), op))
            # every tensor is dumped, so the execution index is the table's
            if select is None:
                check(ds.attrs.get("order") == k, "%s: order %r, expected %d"
                      % (wn, ds.attrs.get("order"), k))
            check(ds.shape == shape_of(kind, pos0, T, m) and ds.dtype == dtype,
                  "%s: %s %s, expected %s %s" % (wn, ds.dtype, ds.shape, np.dtype(dtype),
                                                 shape_of(kind, pos0, T, m)))
            check((ds.compression, ds.shuffle) == (("gzip", True) if compressed
                                                   else (None, False)),
                  "%s: compression %s shuffle %s" % (wn, ds.compression, ds.shuffle))
            tok_axis = 1 if kind == "HTN" else 0
            check(ds.chunks == tuple(1 if d < tok_axis else n for d, n in enumerate(ds.shape)),
                  "%s: chunks %s" % (wn, ds.chunks))
        check(orders == sorted(orders) and len(set(orders)) == len(orders),
              "%s: orders not increasing in table order: %s" % (w, orders))


def check_semantics(f, m):
    """What the tensors mean, seen from the outside: causal masking,
    softmax rows, the residual view, RoPE's identity at position 0."""
    for i, (pos0, T) in enumerate(PASSES):
        g = f["passes/%04d" % i]
        for L in range(m["n_layer"]):
            kq, sm = g["blk.%d.kq" % L][()], g["blk.%d.kq_softmax" % L][()]
            key = np.arange(pos0 + T)[None, None, :]
            qpos = (pos0 + np.arange(T))[None, :, None]
            masked = np.broadcast_to(key > qpos, kq.shape)
            check(np.all(np.isneginf(kq[masked])) and np.all(np.isfinite(kq[~masked])),
                  "pass %d blk.%d.kq: -inf exactly at keys after the query" % (i, L))
            check(np.all(sm[masked] == 0) and np.allclose(sm.sum(axis=-1), 1, atol=1e-5),
                  "pass %d blk.%d.kq_softmax: rows sum to 1, masked keys 0" % (i, L))
            if L:
                check(np.array_equal(g["blk.%d.attn_in" % L][()], g["blk.%d.out" % (L - 1)][()]),
                      "pass %d: blk.%d.attn_in is not blk.%d.out" % (i, L, L - 1))
            if pos0 == 0:
                for t in ("q", "k"):
                    check(np.array_equal(g["blk.%d.%s" % (L, t)][0],
                                         g["blk.%d.%s_rope" % (L, t)][0]),
                          "pass %d blk.%d.%s_rope: rotated at position 0" % (i, L, t))


def check_info(path, f):
    """`diverge info` lists every tensor with numpy's statistics."""
    p = run("info", path)
    if p.returncode:
        return
    try:
        info = dvinfo.parse_info(p.stdout)
    except ValueError as e:
        check(False, "diverge info %s: %s" % (path, e))
        return
    n = sum(len(f["passes"][g]) - 1 for g in f["passes"])
    check((info["path"], info["version"], info["n_passes"], info["n_tensors"]) ==
          (path, 1, len(f["passes"]), n), "info header: %r" % (
              (info["path"], info["version"], info["n_passes"], info["n_tensors"]),))
    # root attributes as printed: strings quoted, integers, reals %.9g
    for key in f.attrs:
        v, got = f.attrs[key], info["attrs"].get(key)
        kind = dvinfo.h5_attr_kind(f, key)
        want = ('"%s"' % v if kind == "str" else "%d" % v if kind == "int" else "%.9g" % v)
        check(got == want, "info attribute %s printed %r, expected %r" % (key, got, want))
    check(set(info["attrs"]) == set(f.attrs), "info attributes %s"
          % sorted(set(info["attrs"]) ^ set(f.attrs)))
    for gname in f["passes"]:
        g, ip = f["passes"][gname], info["passes"].get(int(gname))
        if not check(ip is not None, "info: no pass %s" % gname):
            continue
        check(ip["tokens"] == list(g["tokens"][()]) and ip["pos0"] == g.attrs["pos0"],
              "info pass %s: pos0/tokens %r" % (gname, ip))
        names = sorted((g[n].attrs["order"], n) for n in g if n != "tokens")
        check(list(ip["tensors"]) == [n for _, n in names],
              "info pass %s lists %s" % (gname, list(ip["tensors"])))
        for _, name in names:
            ds, row = g[name], ip["tensors"].get(name)
            if row is None:
                continue
            w = "info pass %s %s" % (gname, name)
            check((row["order"], row["layer"], row["op"], row["shape"], row["type"]) ==
                  (ds.attrs["order"], ds.attrs["layer"], ds.attrs["op"], ds.shape,
                   {4: "f32", 8: "f64"}[ds.dtype.itemsize]), "%s: %r" % (w, row))
            failures.extend(dvinfo.check_stats(row, ds[()], w))


def main():
    if not DIVERGE:
        print("DV_DIVERGE must point at the diverge program")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        gguf, out = os.path.join(tmp, "x.gguf"), os.path.join(tmp, "out.h5")
        tokens, passes = ",".join(map(str, TOKENS)), ",".join(str(T) for _, T in PASSES)
        run("fixture", "tiny", "-o", gguf)
        run("run", gguf, "--tokens", tokens, "--passes", passes, "--dump", out)
        if not check(os.path.exists(out), "no dump written"):
            return report()
        with h5py.File(out, "r") as f:
            check_root(f, gguf, "cpu")
            check_passes(f, MODEL, np.float32)
            check_semantics(f, MODEL)
            check_info(out, f)
            plain = {g + "/" + n: f["passes"][g][n][()] for g in f["passes"]
                     for n in f["passes"][g]}

        # --compress changes the storage, not one bit of the values;
        # --select and --dump-passes keep what they say, in their own pass
        # numbers
        z = os.path.join(tmp, "z.h5")
        run("run", gguf, "--tokens", tokens, "--passes", passes, "--dump", z, "--compress",
            "--select", "blk.1.*", "--select", "logits", "--dump-passes", "1")
        with h5py.File(z, "r") as f:
            keep = lambda name: name.startswith("blk.1.") or name == "logits"  # noqa: E731
            check_passes(f, MODEL, np.float32, passes=(1,), select=keep, compressed=True)
            for g in f["passes"]:
                for n in f["passes"][g]:
                    check(dvinfo.same_values(f["passes"][g][n][()], plain[g + "/" + n])
                          if n != "tokens" else True,
                          "compressed %s/%s differs from the plain dump" % (g, n))
            check_info(z, f)

        # the float64 oracle stores float64
        o = os.path.join(tmp, "oracle.h5")
        run("run", gguf, "--backend", "cpu-f64", "--tokens", tokens, "--passes", passes,
            "--dump", o)
        with h5py.File(o, "r") as f:
            check_root(f, gguf, "cpu-f64")
            check_passes(f, MODEL, np.float64)
            check_info(o, f)
        leftovers = [n for n in os.listdir(tmp) if n.endswith(".part")]
        check(not leftovers, "temporary files left: %s" % leftovers)
    return report()


def report():
    return dvinfo.report("h5py_reads", failures)


if __name__ == "__main__":
    sys.exit(main())
