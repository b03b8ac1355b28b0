"""dvinfo.py - shared by the interop tests: read `diverge info DUMP.h5`'s
output, compute the same statistics with numpy, and compare values exactly.

The format parsed here is cli/info_dump.c's:

    PATH: diverge-dump v1, 2 passes, 76 tensors
      key = value                                   (root attributes)
    pass 0000  pos0 0  tokens 3: 1 5 9
      order  tensor  layer  op  shape  type  min  max  rms  nan  inf
          0  blk.0.attn_in  0  get_rows  [3, 64]  f32  -1.0753e+00 ...
"""
import math
import re

import numpy as np

HEADER = re.compile(r"^(.*): diverge-dump v(\d+), (\d+) pass(?:es)?, (\d+) tensors?$")
ATTR = re.compile(r"^  (\S+) += (.*)$")
PASS = re.compile(r"^pass (\d+)  pos0 (\d+)  tokens (\d+):((?: -?\d+)*)( \.\.\.)?$")
ROW = re.compile(r"^ +(\d+)  (\S+) +(-?\d+)  (\S+) +\[([\d, ]+)\] +(f16|f32|f64) +"
                 r"(\S+) +(\S+) +(\S+) +(\d+) +(\d+)$")


def parse_info(text):
    """{'path', 'version', 'n_passes', 'n_tensors', 'attrs': {key: raw text},
    'passes': {index: {'pos0', 'n_tokens', 'tokens', 'tensors': {name: row}}}}
    where a row is a dict of order, layer, op, shape, type and the statistics
    as printed (strings). Raises ValueError on a line it does not know."""
    lines = text.splitlines()
    m = HEADER.match(lines[0]) if lines else None
    if not m:
        raise ValueError("no header line: %r" % (lines[:1],))
    out = {"path": m.group(1), "version": int(m.group(2)), "n_passes": int(m.group(3)),
           "n_tensors": int(m.group(4)), "attrs": {}, "passes": {}}
    cur = None
    for line in lines[1:]:
        if not line.strip() or line.startswith("config (") or line.lstrip().startswith("order "):
            continue
        m = PASS.match(line)
        if m:
            cur = {"pos0": int(m.group(2)), "n_tokens": int(m.group(3)),
                   "tokens": [int(t) for t in m.group(4).split()], "tensors": {}}
            out["passes"][int(m.group(1))] = cur
            continue
        if cur is None:
            m = ATTR.match(line)
            if not m:
                raise ValueError("unexpected line before the passes: %r" % line)
            out["attrs"][m.group(1)] = m.group(2)
            continue
        m = ROW.match(line)
        if not m:
            raise ValueError("unexpected tensor line: %r" % line)
        cur["tensors"][m.group(2)] = {
            "order": int(m.group(1)), "layer": int(m.group(3)), "op": m.group(4),
            "shape": tuple(int(x) for x in m.group(5).split(",")), "type": m.group(6),
            "min": m.group(7), "max": m.group(8), "rms": m.group(9),
            "nan": int(m.group(10)), "inf": int(m.group(11))}
    return out


def numpy_stats(a):
    """min, max, RMS over the finite values (NaN when there are none), then
    the NaN and Inf counts; accumulated in float64."""
    x = np.asarray(a, dtype=np.float64).ravel()
    fin = x[np.isfinite(x)]
    if fin.size == 0:
        return math.nan, math.nan, math.nan, int(np.isnan(x).sum()), int(np.isinf(x).sum())
    return (float(fin.min()), float(fin.max()), float(np.sqrt(np.mean(fin * fin))),
            int(np.isnan(x).sum()), int(np.isinf(x).sum()))


def _printed(s):
    return math.nan if s.lstrip("-") == "nan" else float(s)


def check_stats(row, a, where):
    """Errors (strings) where the printed statistics of `row` disagree with
    numpy's on array a. min and max are values of the tensor, so their
    printed form (%.4e of the same double) must match character for
    character; the RMS is a sum that C and numpy add in different orders,
    so it must agree to half a unit in the last printed digit."""
    errs = []
    mn, mx, rms, nan, inf = numpy_stats(a)
    for key, v in (("min", mn), ("max", mx)):
        # NaN's sign is not meaningful, and the least of {-0, +0} is either
        want = "nan" if math.isnan(v) else "%.4e" % (v if v else 0.0)
        got = row[key]
        if got.lstrip("-") in ("nan", "0.0000e+00"):
            got = got.lstrip("-")
        if got != want:
            errs.append("%s: %s printed %s, numpy %s" % (where, key, row[key], want))
    p = _printed(row["rms"])
    if math.isnan(rms) or math.isnan(p):
        if not (math.isnan(rms) and math.isnan(p)):
            errs.append("%s: rms printed %s, numpy %r" % (where, row["rms"], rms))
    else:
        # half a unit of the 4th decimal of the mantissa, plus a hair for the
        # decimal rounding of the printed value itself
        exp = math.floor(math.log10(abs(p))) if p else 0
        if abs(p - rms) > 0.5e-4 * 10.0 ** exp * (1 + 1e-6) + 1e-300:
            errs.append("%s: rms printed %s, numpy %.6e" % (where, row["rms"], rms))
    if (row["nan"], row["inf"]) != (nan, inf):
        errs.append("%s: nan/inf printed %d/%d, numpy %d/%d" % (where, row["nan"], row["inf"],
                                                               nan, inf))
    return errs


def same_values(got, want):
    """True when got and want have the same shape and every element is the
    same bit pattern, NaNs being equal to any NaN (their payload is not
    part of the contract)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    ints = {4: np.uint32, 8: np.uint64}[got.dtype.itemsize]
    both_nan = np.isnan(got) & np.isnan(want)
    return bool(np.all(both_nan | (got.view(ints) == want.view(ints))))


def h5_attr_kind(obj, key):
    """'str', 'int' or 'real' for an HDF5 attribute as stored (variable- or
    fixed-length strings both count as 'str')."""
    import h5py
    dt = obj.attrs.get_id(key).dtype
    if h5py.check_string_dtype(dt) is not None:
        return "str"
    return {"i": "int", "u": "int", "f": "real"}.get(dt.kind, "other:%s" % dt)


def report(prog, failures):
    """Print each failure and a summary line; the exit status for them."""
    for msg in failures:
        print("FAIL:", msg)
    print("%s: %d failures" % (prog, len(failures)))
    return 1 if failures else 0
