"""engine_stub_check.py - what engine_stub.c handed to the C API is what
h5py reads from its dumps, value for value, and what `diverge info` printed
about them agrees with numpy.

usage: engine_stub_check.py DIR
  DIR/stub.ref            the inputs, as hex bits of their element type
  DIR/stub.h5, .info      float32 dump and `diverge info`'s output on it
  DIR/stub64.h5, .info    float64 + shuffle/deflate dump, and its info

The expected stored values are the inputs converted by numpy, not by the
library: f16 and bf16 widen exactly, f64 rounds to nearest float32 in the
float32 dump (overflowing to inf) and stays as it is in the float64 dump.
Exit 0 when everything agrees, 1 with one line per difference otherwise.
"""
import os
import re
import sys
import warnings

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dvinfo  # noqa: E402

BITS = {"f32": (np.uint32, np.float32), "f64": (np.uint64, np.float64),
        "f16": (np.uint16, np.float16)}


def read_ref(path):
    """attrs {key: (kind, value)}, passes [{index, pos0, n_tokens, tokens,
    tensors: [{name, layer, op, order, type, shape, values}]}] where values
    are the inputs as numpy arrays of their own type (bf16 as float32)."""
    attrs, passes = {}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            if line.startswith("attr "):
                _, key, kind, value = line.split(" ", 3)
                value = {"str": str, "int": int, "real": float.fromhex}[kind](value)
                attrs[key] = (kind, value)
            elif line.startswith("pass "):
                _, index, pos0, n, toks = line.split(" ")
                passes.append({"index": int(index), "pos0": int(pos0), "n_tokens": int(n),
                               "tokens": [int(t) for t in toks.split(",")], "tensors": []})
            elif line.startswith("tensor "):
                f_ = line.split(" ")
                name, layer, op, order, ty, shape = f_[1:7]
                shape = tuple(int(x) for x in shape.split(","))
                if ty == "bf16":  # the top half of a float32
                    bits = np.array([int(x, 16) << 16 for x in f_[7:]], dtype=np.uint32)
                    values = bits.view(np.float32)
                else:
                    ints, floats = BITS[ty]
                    values = np.array([int(x, 16) for x in f_[7:]], dtype=ints).view(floats)
                passes[-1]["tensors"].append({
                    "name": name, "layer": int(layer), "op": op, "order": int(order),
                    "type": ty, "shape": shape, "values": values.reshape(shape)})
            else:
                raise ValueError("%s: unknown line %r" % (path, line))
    return attrs, passes


def expected(values, stored):
    """The inputs as stored in a float32 or float64 dataset."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 1e39 -> inf is the point
        return values.astype(stored)


def check_file(path, info_path, attrs, passes, stored, errs):
    def err(msg):
        errs.append("%s: %s" % (os.path.basename(path), msg))

    compressed = stored == np.float64  # the stub writes stub64.h5 with DV_DUMP_COMPRESS
    with h5py.File(path, "r") as f:
        # root attributes: the library's, then the stub's, each of its kind
        want = dict(attrs)
        want.update({"schema": ("str", "diverge-dump"), "schema_version": ("int", 1)})
        for key in ("tool_version", "created_utc"):
            if dvinfo.h5_attr_kind(f, key) != "str":
                err("attribute %s is not a string" % key)
        if not re.fullmatch(r"diverge \d+\.\d+\.\d+", str(f.attrs["tool_version"])):
            err("tool_version is %r" % f.attrs["tool_version"])
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(f.attrs["created_utc"])):
            err("created_utc is %r" % f.attrs["created_utc"])
        extra = set(f.attrs) - set(want) - {"tool_version", "created_utc"}
        if extra:
            err("unexpected root attributes %s" % sorted(extra))
        for key, (kind, value) in want.items():
            if key not in f.attrs:
                err("no attribute %s" % key)
                continue
            got_kind, got = dvinfo.h5_attr_kind(f, key), f.attrs[key]
            if got_kind != kind or got != value:
                err("attribute %s = %r (%s), expected %r (%s)" % (key, got, got_kind,
                                                                   value, kind))
        if list(f) != ["passes"]:
            err("root members %s" % list(f))
        want_groups = ["%04d" % p["index"] for p in passes]
        if list(f["passes"]) != want_groups:
            err("pass groups %s, expected %s" % (list(f["passes"]), want_groups))
            return
        for p in passes:
            g = f["passes/%04d" % p["index"]]
            where = "pass %04d" % p["index"]
            for key in ("pos0", "n_tokens"):
                if dvinfo.h5_attr_kind(g, key) != "int" or g.attrs[key] != p[key]:
                    err("%s: %s = %r" % (where, key, g.attrs.get(key)))
            tok = g["tokens"]
            if tok.dtype != np.int32 or list(tok[()]) != p["tokens"]:
                err("%s: tokens %s %r" % (where, tok.dtype, list(tok[()])))
            names = sorted(t["name"] for t in p["tensors"]) + ["tokens"]
            if sorted(g) != sorted(names):
                err("%s: members %s, expected %s" % (where, sorted(g), sorted(names)))
            for t in p["tensors"]:
                ds = g[t["name"]]
                w = "%s %s" % (where, t["name"])
                for key in ("layer", "order"):
                    if dvinfo.h5_attr_kind(ds, key) != "int" or ds.attrs[key] != t[key]:
                        err("%s: %s = %r, expected %r" % (w, key, ds.attrs.get(key), t[key]))
                if dvinfo.h5_attr_kind(ds, "op") != "str" or ds.attrs["op"] != t["op"]:
                    err("%s: op = %r, expected %r" % (w, ds.attrs.get("op"), t["op"]))
                if ds.dtype != stored or ds.shape != t["shape"]:
                    err("%s: %s %s, expected %s %s" % (w, ds.dtype, ds.shape,
                                                       np.dtype(stored), t["shape"]))
                    continue
                # chunks of whole token rows; the token axis of kq is dim 1
                tok_axis = 1 if t["name"].endswith((".kq", ".kq_softmax")) else 0
                want_chunks = tuple(1 if i < tok_axis else n for i, n in enumerate(ds.shape))
                if ds.chunks != want_chunks:
                    err("%s: chunks %s, expected %s" % (w, ds.chunks, want_chunks))
                if (ds.compression, ds.shuffle) != (("gzip", True) if compressed else
                                                    (None, False)):
                    err("%s: compression %s, shuffle %s" % (w, ds.compression, ds.shuffle))
                got, exp = ds[()], expected(t["values"], stored)
                if not dvinfo.same_values(got, exp):
                    bad = np.flatnonzero(~((got == exp) | (np.isnan(got) & np.isnan(exp))) |
                                         (np.signbit(got) != np.signbit(exp)))
                    i = bad[0] if bad.size else 0
                    err("%s: element %d is %r, expected %r (input %r, %s)" % (
                        w, i, got.ravel()[i], exp.ravel()[i], t["values"].ravel()[i],
                        t["type"]))

        # what `diverge info` printed about the same file
        with open(info_path, encoding="utf-8") as fi:
            info = dvinfo.parse_info(fi.read())
        if (info["n_passes"], info["n_tensors"]) != (len(passes),
                                                     sum(len(p["tensors"]) for p in passes)):
            err("info header says %d passes, %d tensors" % (info["n_passes"],
                                                            info["n_tensors"]))
        for p in passes:
            ip = info["passes"].get(p["index"])
            if ip is None or ip["tokens"] != p["tokens"] or ip["pos0"] != p["pos0"]:
                err("info: pass %d is %r" % (p["index"], ip))
                continue
            if [n for n in ip["tensors"]] != [t["name"] for t in p["tensors"]]:
                err("info: pass %d lists %s" % (p["index"], list(ip["tensors"])))
            for t in p["tensors"]:
                row = ip["tensors"].get(t["name"])
                if row is None:
                    continue
                w = "info pass %04d %s" % (p["index"], t["name"])
                if (row["order"], row["layer"], row["op"], row["shape"]) != \
                        (t["order"], t["layer"], t["op"], t["shape"]):
                    err("%s: %r" % (w, row))
                errs.extend("%s: %s" % (os.path.basename(path), e) for e in
                            dvinfo.check_stats(row, expected(t["values"], stored), w))


def main():
    d = sys.argv[1]
    attrs, passes = read_ref(os.path.join(d, "stub.ref"))
    errs = []
    check_file(os.path.join(d, "stub.h5"), os.path.join(d, "stub.info"), attrs, passes,
               np.float32, errs)
    check_file(os.path.join(d, "stub64.h5"), os.path.join(d, "stub64.info"), attrs, passes,
               np.float64, errs)
    n = sum(len(p["tensors"]) for p in passes)
    for e in errs:
        print("FAIL:", e)
    print("engine_stub_check: %d tensors x 2 files, %d differences" % (n, len(errs)))
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
