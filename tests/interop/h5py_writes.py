"""h5py_writes.py - dumps written from Python as docs/dump-api.md shows
are dumps `diverge info` accepts, and broken ones are refused cleanly.

The code under test is the documentation itself: the blocks marked
"<!-- tested: h5py-writer -->" (a plain h5py writer) and
"<!-- tested: ctypes -->" (libdiverge through ctypes) are taken from
docs/dump-api.md and run as they are. PyTorch is not needed: the forward
hooks are simulated with numpy arrays of the shapes Hugging Face's modules
give, reshaped and reordered as the doc's hooks do.

Exit 0 when every check passes, 1 with one line per failure, and 1 with a clear line
without h5py.
"""
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dvinfo  # noqa: E402

DIVERGE = os.environ.get("DV_DIVERGE")
DOC = os.path.join(HERE, "..", "..", "docs", "dump-api.md")
# a made-up model: head_dim 4, GQA 2:1
M = dict(arch="llama", n_vocab=32, n_embd=8, n_layer=2, n_head=2, n_head_kv=1, n_ff=16)
HD = M["n_embd"] // M["n_head"]
PASSES = [(0, [1, 7, 30]), (3, [5])]

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def doc_block(marker):
    """The fenced code block right after "<!-- tested: MARKER -->"."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- tested: %s -->\n```\w*\n(.*?)\n```" % re.escape(marker), text, re.S)
    if not m:
        raise SystemExit("FAIL: %s has no block marked '%s'" % (DOC, marker))
    return m.group(1)


def asan_preload(lib):
    """Environment that lets a Python without AddressSanitizer load a
    libdiverge built with it (scripts/test's second build): the ASan
    runtime preloaded, and no leak report about the interpreter's own
    allocations. Empty for an ordinary build."""
    ldd = subprocess.run(["ldd", lib], capture_output=True, text=True).stdout
    m = re.search(r"^\s*libasan\.so\S* => (\S+)", ldd, re.M)
    if not m:
        return {}
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": m.group(1),
            "ASAN_OPTIONS": (opts + ":" if opts else "") + "detect_leaks=0"}


def info(path):
    p = subprocess.run([DIVERGE, "info", path], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def hook_outputs(rng, T, L):
    """What the doc's hooks write for layer L of a pass of T tokens, in
    execution order: (name, array after the hook's fix, layer, op). The
    module outputs carry a batch axis of 1, as Hugging Face's do."""
    H, K, d, F = M["n_head"], M["n_head_kv"], M["n_embd"], M["n_ff"]

    def module(*shape):
        return rng.standard_normal((1,) + shape).astype(np.float32)

    def gguf_order(x, heads):  # the doc's reorder, on [T, heads * hd]
        return x.reshape(-1, heads, 2, HD // 2).swapaxes(2, 3).reshape(-1, heads, HD)

    b = "blk.%d." % L
    return [
        (b + "attn_in", module(T, d)[0], L, "view" if L else "get_rows"),
        (b + "attn_norm", module(T, d)[0], L, "rmsnorm"),
        (b + "q", gguf_order(module(T, H * HD)[0], H), L, "matmul"),
        (b + "k", gguf_order(module(T, K * HD)[0], K), L, "matmul"),
        (b + "v", module(T, K * HD)[0].reshape(-1, K, HD), L, "matmul"),
        (b + "attn_out", module(T, H * HD)[0], L, "kqv"),
        (b + "attn_proj", module(T, d)[0], L, "matmul"),
        (b + "ffn_in", module(T, d)[0], L, "add"),
        (b + "ffn_norm", module(T, d)[0], L, "rmsnorm"),
        (b + "ffn_gate", module(T, F)[0], L, "matmul"),
        (b + "ffn_up", module(T, F)[0], L, "matmul"),
        (b + "ffn_act", module(T, F)[0], L, "silu_mul"),
        (b + "ffn_out", module(T, d)[0], L, "matmul"),
        (b + "out", module(T, d)[0], L, "add"),
    ]


def write_hf_dump(ns, path, model=M, mutate=None):
    """A two-pass dump through the doc's DivergeDump, as the hooks would
    write it, plus one tensor of the engine's own. mutate(name, x) may
    replace an array (for the broken variants). Returns {(pass, name):
    (array, layer, op, order)}."""
    rng = np.random.default_rng(1234)
    dump = ns["DivergeDump"](path, "transformers-cpu", **model)
    written = {}
    for i, (pos0, toks) in enumerate(PASSES):
        T = len(toks)
        dump.begin_pass(pos0, toks)
        order = 0
        outs = []
        for L in range(M["n_layer"]):
            outs += hook_outputs(rng, T, L)
        outs += [("output_norm", rng.standard_normal((T, M["n_embd"])).astype(np.float32), -1,
                  "rmsnorm"),
                 ("hf.lm_head_bias_free", np.zeros((T, 1), np.float32), -1, "note"),
                 ("logits", rng.standard_normal((T, M["n_vocab"])).astype(np.float32) * 8, -1,
                  "matmul")]
        for name, x, layer, op in outs:
            if mutate:
                x = mutate(name, x, pos0, T)
            dump.write(name, x, layer, op)
            written[(i, name)] = (np.ascontiguousarray(x, np.float32), layer, op, order)
            order += 1
    dump.close()
    return written


def check_accepted(path, written, what):
    rc, out, err = info(path)
    if not check(rc == 0, "%s: diverge info exit %d: %s" % (what, rc, err.strip())):
        return
    try:
        parsed = dvinfo.parse_info(out)
    except ValueError as e:
        check(False, "%s: %s" % (what, e))
        return
    check(parsed["n_passes"] == len(PASSES) and parsed["n_tensors"] == len(written),
          "%s: info header %d passes, %d tensors" % (what, parsed["n_passes"],
                                                      parsed["n_tensors"]))
    for (i, name), (x, layer, op, order) in written.items():
        row = parsed["passes"].get(i, {}).get("tensors", {}).get(name)
        w = "%s: pass %d %s" % (what, i, name)
        if not check(row is not None, "%s: not listed" % w):
            continue
        check((row["layer"], row["op"], row["order"], row["shape"]) ==
              (layer, op, order, x.shape), "%s: listed as %r" % (w, row))
        failures.extend(dvinfo.check_stats(row, x, w))


def check_refused(path, what):
    """exit 2 and exactly one line on stderr, "diverge: ..." naming the file"""
    rc, out, err = info(path)
    lines = err.splitlines()
    check(rc == 2 and len(lines) == 1 and lines[0].startswith("diverge: ") and path in lines[0],
          "%s: exit %d, stderr %r" % (what, rc, err))
    return lines[0] if lines else ""


def main():
    if not DIVERGE:
        print("DV_DIVERGE must point at the diverge program")
        return 1
    ns = {}
    exec(compile(doc_block("h5py-writer"), DOC + " (h5py-writer)", "exec"), ns)
    with tempfile.TemporaryDirectory() as tmp:
        # the hooks' dump, as the doc writes it
        hf = os.path.join(tmp, "hf.h5")
        written = write_hf_dump(ns, hf)
        check_accepted(hf, written, "hf.h5")
        check(not [n for n in os.listdir(tmp) if n.endswith(".part")], "a .part file is left")
        with h5py.File(hf, "r") as f:
            check(f["passes/0000/blk.0.q"].shape == (3, M["n_head"], HD),
                  "blk.0.q is not [T, H, hd]")

        # other ways h5py users store the same things: fixed-length byte
        # strings, 32-bit integers, float64 and chunked + gzip datasets
        other = os.path.join(tmp, "other.h5")
        write_hf_dump(ns, other)
        with h5py.File(other, "r+") as f:
            f.attrs["arch"] = np.bytes_(b"llama")
            f.attrs["n_layer"] = np.int32(M["n_layer"])
            g = f["passes/0001"]
            g.attrs["pos0"] = np.int32(3)
            x = g["logits"][()]
            attrs = dict(g["logits"].attrs)
            del g["logits"]
            ds = g.create_dataset("logits", data=x.astype(np.float64), chunks=(1, 8),
                                  compression="gzip", shuffle=True)
            ds.attrs.update(attrs)
        rc, out, err = info(other)
        check(rc == 0, "other.h5 (fixed strings, int32, f64 gzip): exit %d: %s" % (rc, err.strip()))
        check(re.search(r" logits +-1 +matmul +\[1, 32\] +f64 ", out) is not None,
              "other.h5: f64 logits not listed as f64")

        # broken files: one clear line, exit 2
        def variant(name, model=M, mutate=None, edit=None):
            path = os.path.join(tmp, name)
            write_hf_dump(ns, path, model=model, mutate=mutate)
            if edit:
                with h5py.File(path, "r+") as f:
                    edit(f)
            return path

        def set_version(f):
            f.attrs["schema_version"] = np.int64(2)

        msg = check_refused(variant("v2.h5", edit=set_version), "schema_version 2")
        check("schema version 2" in msg, "schema_version 2: message %r" % msg)

        def flat_q(name, x, pos0, T):  # the hook without its reshape
            return x.reshape(T, -1) if name == "blk.0.q" else x

        msg = check_refused(variant("flatq.h5", mutate=flat_q), "q of shape [T, H*hd]")
        check("blk.0.q" in msg and "expected [3, 2, 4]" in msg, "flat q: message %r" % msg)

        no_layers = {k: v for k, v in M.items() if k != "n_layer"}
        msg = check_refused(variant("nolayer.h5", model=no_layers), "no n_layer")
        check("n_layer" in msg, "no n_layer: message %r" % msg)

        def padded_kq(name, x, pos0, T):  # llama.cpp's scores over its padded cache
            return np.zeros((M["n_head"], T, 256), np.float32) if name == "blk.1.attn_proj" \
                else x

        def rename_to_kq(f):
            for g in f["passes"].values():
                g.move("blk.1.attn_proj", "blk.1.kq_softmax")
                g["blk.1.kq_softmax"].attrs["op"] = "softmax"

        msg = check_refused(variant("padkq.h5", mutate=padded_kq, edit=rename_to_kq),
                            "kq_softmax over a padded cache")
        check("blk.1.kq_softmax" in msg, "padded kq: message %r" % msg)

        def token_out_of_vocab(f):
            del f["passes/0001/tokens"]
            f["passes/0001"].create_dataset("tokens", data=np.array([M["n_vocab"]], np.int32))

        check_refused(variant("tok.h5", edit=token_out_of_vocab), "token outside the vocabulary")

        # (a) the ctypes example, run as a program with libdiverge on the
        # loader's path
        libdir = os.path.dirname(os.path.dirname(os.path.abspath(DIVERGE)))
        if check(os.path.exists(os.path.join(libdir, "libdiverge.so.0")),
                 "no libdiverge.so.0 in %s" % libdir):
            script = os.path.join(tmp, "ctypes_example.py")
            with open(script, "w", encoding="utf-8") as f:
                f.write(doc_block("ctypes"))
            env = dict(os.environ, LD_LIBRARY_PATH=libdir + os.pathsep +
                       os.environ.get("LD_LIBRARY_PATH", ""))
            env.update(asan_preload(os.path.join(libdir, "libdiverge.so.0")))
            p = subprocess.run([sys.executable, script], cwd=tmp, env=env,
                               capture_output=True, text=True)
            check(p.returncode == 0, "ctypes example: exit %d: %s" % (p.returncode,
                                                                     p.stderr.strip()[-400:]))
            py = os.path.join(tmp, "py.h5")
            rc, out, err = info(py)
            check(rc == 0, "py.h5: diverge info exit %d: %s" % (rc, err.strip()))
            if rc == 0:
                rows = dvinfo.parse_info(out)["passes"][0]["tensors"]
                check(list(rows) == ["blk.0.attn_norm", "blk.0.q", "logits"],
                      "py.h5 lists %s" % list(rows))
                with h5py.File(py, "r") as f:
                    for name, row in rows.items():
                        failures.extend(dvinfo.check_stats(row, f["passes/0000"][name][()],
                                                           "py.h5 " + name))
                    check(f.attrs["backend"] == "numpy", "py.h5: backend %r"
                          % f.attrs["backend"])
    return dvinfo.report("h5py_writes", failures)


if __name__ == "__main__":
    sys.exit(main())
