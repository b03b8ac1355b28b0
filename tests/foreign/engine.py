#!/usr/bin/python3
"""engine.py - a foreign LLaMA engine for diverge's tests.

An independent forward pass of a GGUF LLaMA model in numpy (float32 tensors,
float64 accumulation inside each op), with its own GGUF reader, that writes
diverge-dump(5) schema-v1 files with h5py. It shares no code with diverge:
it is the "other engine" whose dumps `diverge compare` judges. Optional
deliberate bugs (--bug NAME[@LAYER][,NAME[@LAYER]...], --list-bugs) let the
tests check that compare names the tensor where each bug first shows.

usage: engine.py MODEL.gguf --tokens 1,2,3 [--passes 2,1] --dump OUT.h5
                 [--bug NAME[@LAYER][,...]] [--residual-only]
       engine.py --list-bugs [--passes 6,5,1,1]
Exit status: 0 written, 2 bad usage or input (one line on stderr).
"""
import argparse
import datetime
import hashlib
import os
import struct
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print(f"engine.py: {sys.executable} has no numpy (python3-numpy)", file=sys.stderr)
    sys.exit(2)

PROG = "engine.py"
BACKEND = "numpy-engine"
VERSION = "numpy-engine 0.1"


class Fail(Exception):
    """Bad usage or input: one line on stderr, exit 2."""


# --------------------------------------------------------------------------
# GGUF v3 reader
# --------------------------------------------------------------------------

# metadata value types: id -> struct format (8 string, 9 array handled apart)
GGUF_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i",
               6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
# ggml tensor types this engine reads: id -> (name, block elements, block bytes)
GGML_READ = {0: ("f32", 1, 4), 1: ("f16", 1, 2), 8: ("q8_0", 32, 34)}
# names of the others, for the error message
GGML_OTHER = {2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 9: "q8_1",
              10: "q2_k", 11: "q3_k", 12: "q4_k", 13: "q5_k", 14: "q6_k",
              15: "q8_k", 30: "bf16"}


class GGUF:
    """Header, metadata and tensor table of a GGUF file held in memory."""

    def __init__(self, path):
        self.path = path
        try:
            with open(path, "rb") as f:
                self.buf = f.read()
        except OSError as e:
            raise Fail(f"{path}: {e.strerror}")
        self.pos = 0
        if self.take("<4s") != b"GGUF":
            raise Fail(f"{path}: not a GGUF file (bad magic)")
        version = self.take("<I")
        if version != 3:
            raise Fail(f"{path}: GGUF version {version}, this reader takes 3")
        n_tensors, n_kv = self.take("<Q"), self.take("<Q")
        self.meta = {}
        for _ in range(n_kv):
            key = self.string()
            self.meta[key] = self.value(self.take("<I"))
        infos = []
        for _ in range(n_tensors):
            name = self.string()
            n_dims = self.take("<I")
            if not 1 <= n_dims <= 4:
                raise Fail(f"{path}: tensor {name}: {n_dims} dimensions")
            ne = [self.take("<Q") for _ in range(n_dims)]
            infos.append((name, ne, self.take("<I"), self.take("<Q")))
        align = self.meta.get("general.alignment", 32)
        if not isinstance(align, int) or align <= 0 or align & (align - 1):
            raise Fail(f"{path}: bad general.alignment {align!r}")
        self.data = (self.pos + align - 1) // align * align
        self.tensors = {}
        for name, ne, ty, off in infos:
            if ty not in GGML_READ:
                tname = GGML_OTHER.get(ty, f"type {ty}")
                raise Fail(f"{path}: tensor {name} is {tname}: "
                           "this engine reads f32, f16 and q8_0 only")
            n = int(np.prod(ne))
            _, blk, bsize = GGML_READ[ty]
            if ne[0] % blk:
                raise Fail(f"{path}: tensor {name}: row of {ne[0]} not a "
                           f"multiple of the {blk}-element block")
            start, nbytes = self.data + off, n // blk * bsize
            if off % align or start + nbytes > len(self.buf):
                raise Fail(f"{path}: tensor {name}: data outside the file")
            self.tensors[name] = (ne, ty, start, nbytes)

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise Fail(f"{self.path}: file ends inside the header")
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return v

    def string(self):
        n = self.take("<Q")
        if self.pos + n > len(self.buf):
            raise Fail(f"{self.path}: file ends inside a string")
        s = self.buf[self.pos:self.pos + n]
        self.pos += n
        try:
            return s.decode("utf-8")
        except UnicodeDecodeError:
            raise Fail(f"{self.path}: string at {self.pos - n} is not UTF-8")

    def value(self, ty):
        if ty in GGUF_SCALAR:
            return self.take(GGUF_SCALAR[ty])
        if ty == 8:
            return self.string()
        if ty == 9:                              # array: type, count, values
            ety, n = self.take("<I"), self.take("<Q")
            if n > len(self.buf):
                raise Fail(f"{self.path}: array of {n} elements")
            return [self.value(ety) for _ in range(n)]
        raise Fail(f"{self.path}: unknown metadata value type {ty}")

    def tensor(self, name):
        """Dequantized float32 array, shape reversed(ne) (row-major)."""
        if name not in self.tensors:
            raise Fail(f"{self.path}: tensor {name} missing")
        ne, ty, start, nbytes = self.tensors[name]
        raw = self.buf[start:start + nbytes]
        shape = tuple(reversed(ne))
        if ty == 0:
            x = np.frombuffer(raw, "<f4")
        elif ty == 1:
            x = np.frombuffer(raw, "<f2").astype(np.float32)
        else:   # q8_0: blocks of an f16 scale d and 32 int8 q; value = d * q
            b = np.frombuffer(raw, np.dtype([("d", "<f2"), ("q", "i1", 32)]))
            x = b["d"].astype(np.float32)[:, None] * b["q"].astype(np.float32)
        return x.astype(np.float32).reshape(shape)

    def type_name(self, name):
        return GGML_READ[self.tensors[name][1]][0]


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

ROPE_TYPE = {"llama": "norm"}   # GGUF llama: adjacent pairs (2i, 2i+1)


class Model:
    def __init__(self, g):
        m = g.meta
        self.arch = m.get("general.architecture")
        if self.arch not in ROPE_TYPE:
            raise Fail(f"{g.path}: architecture {self.arch!r} not supported")

        def key(k, default=None):
            v = m.get(f"{self.arch}.{k}", default)
            if v is None:
                raise Fail(f"{g.path}: metadata {self.arch}.{k} missing")
            return v
        self.d = key("embedding_length")
        self.n_layer = key("block_count")
        self.H = key("attention.head_count")
        self.Hkv = key("attention.head_count_kv", self.H)
        self.F = key("feed_forward_length")
        self.n_ctx = key("context_length", 0)
        self.eps = key("attention.layer_norm_rms_epsilon", 1e-5)
        self.base = key("rope.freq_base", 10000.0)
        self.hd = key("attention.key_length", self.d // max(self.H, 1))
        self.n_rot = key("rope.dimension_count", self.hd)
        self.rope_type = ROPE_TYPE[self.arch]
        if (self.H < 1 or self.Hkv < 1 or self.H % self.Hkv
                or self.n_rot > self.hd or self.n_rot % 2):
            raise Fail(f"{g.path}: inconsistent head counts or n_rot")
        self.embd = g.tensor("token_embd.weight")
        self.V = self.embd.shape[0]
        out = "output.weight" if "output.weight" in g.tensors else "token_embd.weight"
        self.out_w = g.tensor(out).astype(np.float64)
        self.out_norm = g.tensor("output_norm.weight")
        mats = {out}
        self.layers = []
        for L in range(self.n_layer):
            w = {}
            for k in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                      "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"):
                name = f"blk.{L}.{k}.weight"
                w[k] = g.tensor(name)
                if not k.endswith("norm"):
                    w[k] = w[k].astype(np.float64)  # f64 copies for the products
                    mats.add(name)
            self.layers.append(w)
        # the weight types of the matrix products, ascending ggml type id
        ids = sorted({g.tensors[n][1] for n in mats})
        self.act_quant_types = ",".join(f"{GGML_READ[i][0]}=none" for i in ids)


# --------------------------------------------------------------------------
# Bugs: name -> (when, first layer, first tensor, doc). "when" says in which
# pass of a schedule the bug first shows: any (the first pass), multi (the
# first pass of more than one token), after-decode (the first pass after a
# one-token pass). The first layer is the one given with @LAYER, else this
# one; None: outside the layers (no @LAYER).
# --------------------------------------------------------------------------

BUGS = {
    "norm-no-weight": ("any", 0, "attn_norm",
                       "rmsnorm ignores its weight vector (x / rms only)"),
    "mask-after-softmax": ("multi", 0, "kq_softmax",
                           "softmax over all keys, masked ones zeroed after it, "
                           "not renormalised (kq is dumped masked)"),
    "rope-pos-off": ("any", 0, "q_rope",
                     "RoPE rotates by position pos0 + t + 1 instead of pos0 + t"),
    "kqv-uses-k": ("any", 0, "attn_out",
                   "attention sums probabilities times K instead of V"),
    "attn-res-normed": ("any", 0, "ffn_in",
                        "the attention residual adds attn_norm instead of attn_in"),
    "gate-up-swap": ("any", 0, "ffn_act",
                     "swiglu computes silu(up) * gate instead of silu(gate) * up"),
    "sigmoid-act": ("any", 0, "ffn_act",
                    "the FFN uses sigmoid(gate) instead of silu(gate)"),
    "no-ffn-residual": ("any", 0, "out",
                        "the layer output is ffn_out, the FFN residual is dropped"),
    "no-output-norm": ("any", None, "output_norm",
                       "output_norm returns its input, not normalised"),
    "decode-no-kv-write": ("after-decode", 0, "kq",
                           "one-token passes attend to their own K/V but never "
                           "store them in the cache"),
    "layer0-cache": ("any", 1, "kq",
                     "attention reads layer 0's KV cache in every layer "
                     "(each layer still writes its own)"),
}


def first_pass(when, sched):
    """The pass where a bug of kind `when` first shows, or None."""
    for i, n in enumerate(sched):
        if (when == "any" or (when == "multi" and n > 1)
                or (when == "after-decode" and i > 0 and sched[i - 1] == 1)):
            return i
    return None


def parse_bug(spec, n_layer):
    """NAME or NAME@LAYER -> (name, layer or None for all)."""
    name, _, layer = spec.partition("@")
    if name not in BUGS:
        raise Fail(f"unknown bug {name!r} (--list-bugs lists them)")
    if not layer:
        return name, None
    if not layer.isdigit() or int(layer) >= n_layer:
        raise Fail(f"bug {spec}: layer must be 0..{n_layer - 1}")
    default = BUGS[name][1]
    if default is None or int(layer) < default:
        raise Fail(f"bug {spec}: has no effect in layer {layer}")
    return name, int(layer)


# --------------------------------------------------------------------------
# The forward pass. Tensors are float32; each op computes in float64 from
# its float32 inputs and rounds its result to float32.
# --------------------------------------------------------------------------

F32, F64 = np.float32, np.float64


def matmul(x, w64):
    """y = W x for each row of x: W [out, in] (GGUF ne [in, out])."""
    return (x.astype(F64) @ w64.T).astype(F32)


def rmsnorm(x, w, eps, use_weight=True):
    """x / sqrt(mean(x^2) + eps) * w, over the last axis."""
    x = x.astype(F64)
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return (y * w if use_weight else y).astype(F32)


def rope(x, pos, n_rot, base, mode):
    """Rotate pairs of x [T, heads, hd] by angle pos * base^(-2i/n_rot),
    i < n_rot/2; norm pairs (2i, 2i+1), neox pairs (i, i + n_rot/2).
    Dimensions from n_rot on are left as they are."""
    half = n_rot // 2
    theta = base ** (-2.0 * np.arange(half) / n_rot)
    ang = pos.astype(F64)[:, None, None] * theta          # [T, 1, half]
    c, s = np.cos(ang), np.sin(ang)
    y = x.astype(F64)
    if mode == "norm":
        i0, i1 = np.arange(0, n_rot, 2), np.arange(1, n_rot, 2)
    else:
        i0, i1 = np.arange(half), np.arange(half, n_rot)
    x0, x1 = y[..., i0].copy(), y[..., i1].copy()
    y[..., i0] = x0 * c - x1 * s
    y[..., i1] = x0 * s + x1 * c
    return y.astype(F32)


class Engine:
    def __init__(self, model, bugs, n_total):
        self.m = model
        self.bugs = bugs or []  # [(name, layer or None for all)]
        M = model
        # KV cache: per layer [positions, Hkv, hd], float32 (kv_type f32)
        self.K = [np.zeros((n_total, M.Hkv, M.hd), F32) for _ in range(M.n_layer)]
        self.V = [np.zeros((n_total, M.Hkv, M.hd), F32) for _ in range(M.n_layer)]

    def on(self, name, layer=None):
        """Is bug `name` active (in `layer`)?"""
        return any(b == name and (layer is None or bl is None or bl == layer)
                   for b, bl in self.bugs)

    def forward(self, tokens, pos0, emit):
        """One pass of T tokens at positions pos0 ..; emit(name, layer, op, x)."""
        M = self.m
        T, n_kv, G = len(tokens), pos0 + len(tokens), M.H // M.Hkv
        pos = np.arange(pos0, n_kv)
        x = M.embd[tokens].copy()                              # get_rows
        # causal mask: query t (position pos0 + t) sees keys 0 .. pos0 + t
        masked = np.arange(n_kv)[None, :] > pos[:, None]       # [T, n_kv]
        for L, w in enumerate(M.layers):
            emit(f"blk.{L}.attn_in", L, "get_rows" if L == 0 else "view", x)
            n = rmsnorm(x, w["attn_norm"], M.eps, not self.on("norm-no-weight", L))
            emit(f"blk.{L}.attn_norm", L, "rmsnorm", n)
            q = matmul(n, w["attn_q"]).reshape(T, M.H, M.hd)
            k = matmul(n, w["attn_k"]).reshape(T, M.Hkv, M.hd)
            v = matmul(n, w["attn_v"]).reshape(T, M.Hkv, M.hd)
            emit(f"blk.{L}.q", L, "matmul", q)
            emit(f"blk.{L}.k", L, "matmul", k)
            emit(f"blk.{L}.v", L, "matmul", v)
            rpos = pos + 1 if self.on("rope-pos-off", L) else pos
            qr = rope(q, rpos, M.n_rot, M.base, M.rope_type)
            kr = rope(k, rpos, M.n_rot, M.base, M.rope_type)
            emit(f"blk.{L}.q_rope", L, "rope", qr)
            emit(f"blk.{L}.k_rope", L, "rope", kr)

            # KV cache: this pass's K/V go to slots pos0 .. n_kv - 1
            Kc, Vc = self.K[L], self.V[L]
            if T == 1 and self.on("decode-no-kv-write", L):
                Kall = np.concatenate([Kc[:pos0], kr])     # own K/V, not stored
                Vall = np.concatenate([Vc[:pos0], v])
            else:
                Kc[pos0:n_kv], Vc[pos0:n_kv] = kr, v
                src = 0 if self.on("layer0-cache", L) else L
                Kall, Vall = self.K[src][:n_kv], self.V[src][:n_kv]

            # scores [H, T, n_kv]: query head h = kv*G + g reads kv head h // G
            qg = qr.astype(F64).reshape(T, M.Hkv, G, M.hd)
            s = np.einsum("tkgd,nkd->kgtn", qg, Kall.astype(F64))
            s = (s.reshape(M.H, T, n_kv) / np.sqrt(M.hd)).astype(F32)
            kq = np.where(masked[None], -np.inf, s).astype(F32)
            emit(f"blk.{L}.kq", L, "kq", kq)
            # softmax over each row; exp(-inf) = 0 at masked keys
            z = s if self.on("mask-after-softmax", L) else kq
            z = z.astype(F64)
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            p = e / e.sum(axis=-1, keepdims=True)
            if self.on("mask-after-softmax", L):
                p[:, masked] = 0.0
            p = p.astype(F32)
            emit(f"blk.{L}.kq_softmax", L, "softmax", p)
            # probabilities times V, heads concatenated: [T, H*hd]
            vals = Kall if self.on("kqv-uses-k", L) else Vall
            pg = p.astype(F64).reshape(M.Hkv, G, T, n_kv)
            o = np.einsum("kgtn,nkd->tkgd", pg, vals.astype(F64))
            o = o.reshape(T, M.H * M.hd).astype(F32)
            emit(f"blk.{L}.attn_out", L, "kqv", o)
            a = matmul(o, w["attn_output"])
            emit(f"blk.{L}.attn_proj", L, "matmul", a)
            h = (n if self.on("attn-res-normed", L) else x) + a
            emit(f"blk.{L}.ffn_in", L, "add", h)

            # FFN: Wdown (silu(Wgate m) * Wup m), m = rmsnorm(h)
            mn = rmsnorm(h, w["ffn_norm"], M.eps, not self.on("norm-no-weight", L))
            emit(f"blk.{L}.ffn_norm", L, "rmsnorm", mn)
            gate = matmul(mn, w["ffn_gate"])
            up = matmul(mn, w["ffn_up"])
            emit(f"blk.{L}.ffn_gate", L, "matmul", gate)
            emit(f"blk.{L}.ffn_up", L, "matmul", up)
            g64, u64 = gate.astype(F64), up.astype(F64)
            if self.on("gate-up-swap", L):
                g64, u64 = u64, g64
            sig = 1.0 / (1.0 + np.exp(-g64))
            act = (sig if self.on("sigmoid-act", L) else g64 * sig) * u64
            act = act.astype(F32)
            emit(f"blk.{L}.ffn_act", L, "silu_mul", act)
            f = matmul(act, w["ffn_down"])
            emit(f"blk.{L}.ffn_out", L, "matmul", f)
            x = f if self.on("no-ffn-residual", L) else h + f
            emit(f"blk.{L}.out", L, "add", x)

        y = x if self.on("no-output-norm") else rmsnorm(x, M.out_norm, M.eps)
        emit("output_norm", -1, "rmsnorm", y)
        emit("logits", -1, "matmul", matmul(y, M.out_w))


# --------------------------------------------------------------------------
# Dump writer (diverge-dump(5), schema version 1)
# --------------------------------------------------------------------------

def root_attrs(model, path, inject):
    M = model
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    s = {"schema": "diverge-dump", "tool_version": VERSION,
         "created_utc": datetime.datetime.now(datetime.timezone.utc)
         .strftime("%Y-%m-%dT%H:%M:%SZ"),
         "backend": BACKEND, "device": "CPU",
         "driver": f"numpy {np.__version__}, Python {sys.version.split()[0]}",
         "model_path": os.path.abspath(path), "model_sha256": sha,
         "inject": inject, "arch": M.arch, "rope_type": M.rope_type,
         # exact float32 arithmetic: nothing rounded inside the products
         "act_quant": "none", "act_quant_types": M.act_quant_types,
         "attn_quant": "none", "kv_type": "f32"}
    i = {"schema_version": 1, "n_vocab": M.V, "n_embd": M.d,
         "n_layer": M.n_layer, "n_head": M.H, "n_head_kv": M.Hkv, "n_ff": M.F,
         "head_dim": M.hd, "n_rot": M.n_rot, "n_ctx_train": M.n_ctx}
    r = {"rope_freq_base": M.base, "rms_eps": M.eps}
    attrs = {k: v for k, v in s.items()}
    attrs.update({k: np.int64(v) for k, v in i.items()})
    attrs.update({k: np.float64(v) for k, v in r.items()})
    return attrs


RESIDUAL = ("out", "output_norm", "logits")   # --residual-only keeps these


def write_dump(args, model, sched, tokens, bug):
    import h5py
    out = os.path.abspath(args.dump)
    d, base = os.path.split(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=d)
    os.close(fd)
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs.update(root_attrs(model, args.model, args.bug or ""))
            passes = f.create_group("passes", track_order=True)
            eng = Engine(model, bug, len(tokens))
            pos0 = 0
            for i, n in enumerate(sched):
                toks = tokens[pos0:pos0 + n]
                g = passes.create_group(f"{i:04d}", track_order=True)
                g.attrs["pos0"], g.attrs["n_tokens"] = np.int64(pos0), np.int64(n)
                g.create_dataset("tokens", data=np.array(toks, "<i4"))
                order = [0]

                def emit(name, layer, op, x):
                    # order is the execution index in the full table, also
                    # for the tensors --residual-only leaves out
                    if not args.residual_only or name.split(".")[-1] in RESIDUAL:
                        ds = g.create_dataset(name, data=np.ascontiguousarray(x, "<f4"))
                        ds.attrs["layer"] = np.int64(layer)
                        ds.attrs["op"] = op
                        ds.attrs["order"] = np.int64(order[0])
                    order[0] += 1
                eng.forward(np.array(toks), pos0, emit)
                pos0 += n
        os.chmod(tmp, 0o666 & ~umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def umask():
    m = os.umask(0)
    os.umask(m)
    return m


# --------------------------------------------------------------------------

def int_list(s, what):
    try:
        v = [int(t) for t in s.split(",")]
    except ValueError:
        raise Fail(f"{what}: expected comma-separated integers, got {s!r}")
    return v


def list_bugs(sched):
    print(f"{'bug':20} {'first pass':>10}  {'layer':>5}  {'tensor':12} doc  "
          f"(passes {','.join(map(str, sched))})")
    for name, (when, layer, tensor, doc) in BUGS.items():
        p = first_pass(when, sched)
        print(f"{name:20} {'-' if p is None else p:>10}  "
              f"{'-' if layer is None else layer:>5}  {tensor:12} {doc}")


def main(argv):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--tokens")
    ap.add_argument("--passes")
    ap.add_argument("--dump")
    ap.add_argument("--bug")
    ap.add_argument("--residual-only", action="store_true")
    ap.add_argument("--list-bugs", action="store_true")
    args = ap.parse_args(argv)
    if args.list_bugs:
        list_bugs(int_list(args.passes or "6,5,1,1", "--passes"))
        return 0
    if not (args.model and args.tokens and args.dump):
        raise Fail("MODEL, --tokens and --dump are required (--help)")
    tokens = int_list(args.tokens, "--tokens")
    sched = int_list(args.passes, "--passes") if args.passes else [len(tokens)]
    if min(sched) < 1 or sum(sched) != len(tokens):
        raise Fail(f"--passes {args.passes} does not split {len(tokens)} tokens")
    try:
        import h5py  # noqa: F401
    except ImportError:
        raise Fail(f"{sys.executable} has no h5py (python3-h5py)")
    model = Model(GGUF(args.model))
    if min(tokens) < 0 or max(tokens) >= model.V:
        raise Fail(f"--tokens: ids must be 0..{model.V - 1}")
    bugs = [parse_bug(b, model.n_layer) for b in args.bug.split(",")] if args.bug else None
    write_dump(args, model, sched, tokens, bugs)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Fail as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        sys.exit(2)
