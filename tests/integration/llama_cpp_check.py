"""llama_cpp_check.py - a llama.cpp dump against the cpu reference's dump of
the same run, read with h5py alone.

    llama_cpp_check.py TEST.h5 REF.h5 TOL [--flash] [--show NAME,...]

Every pass of REF is in TEST with the same tokens, and every tensor of the
reference's pass (design.md's table: 18 per layer, output_norm, logits) is
in TEST's pass with the same shape, layer, op and order, except kq and
kq_softmax with --flash (fused away; they must then be absent). Values:
the masked scores are -inf exactly where the reference's are, everything
else finite, and the relative RMS error sqrt(sum (a-b)^2 / sum b^2) of each
tensor at most TOL. Prints the worst tensor; with --show, the relative RMS
error of the named tensors in every pass. Exit 0 when all hold, 1 with a
line per failure.
"""
import sys

import h5py
import numpy as np


def rel_rms(a, b):
    fin = np.isfinite(b)
    d = (a[fin] - b[fin]).astype(np.float64)
    den = np.sum(b[fin].astype(np.float64) ** 2)
    return float(np.sqrt(np.sum(d * d) / den)) if den > 0 else float(np.sqrt(np.sum(d * d)))


def check_pass(pt, pr, key, tol, flash, show, fails):
    worst = (0.0, "")
    if not np.array_equal(pt["tokens"][()], pr["tokens"][()]):
        fails.append(f"pass {key}: tokens differ")
    for name, dr in pr.items():
        if name == "tokens":
            continue
        fused = flash and (name.endswith(".kq") or name.endswith(".kq_softmax"))
        if fused:
            if name in pt:
                fails.append(f"pass {key}: {name} present with flash attention")
            continue
        if name not in pt:
            fails.append(f"pass {key}: {name} missing")
            continue
        dt = pt[name]
        if dt.shape != dr.shape:
            fails.append(f"pass {key}: {name} shape {dt.shape}, reference {dr.shape}")
            continue
        for attr in ("layer", "op", "order"):
            if dt.attrs[attr] != dr.attrs[attr]:
                fails.append(f"pass {key}: {name} {attr} {dt.attrs[attr]} != {dr.attrs[attr]}")
        a, b = dt[()], dr[()]
        masked = np.isneginf(b)
        if not np.array_equal(np.isneginf(a), masked):
            fails.append(f"pass {key}: {name}: -inf where the reference has none, or missing")
        if not np.all(np.isfinite(a[~masked])):
            fails.append(f"pass {key}: {name}: NaN or inf")
            continue
        e = rel_rms(a, b)
        if e > tol:
            fails.append(f"pass {key}: {name}: relative rms {e:.3g} > {tol:g}")
        if e >= worst[0]:
            worst = (e, name)
        if name in show:
            print(f"  pass {key} {name}: relative rms {e:.3g}")
    return worst


def main():
    args = sys.argv[1:]
    flash = "--flash" in args
    show = []
    if "--show" in args:
        show = args[args.index("--show") + 1].split(",")
        del args[args.index("--show"):args.index("--show") + 2]
    args = [a for a in args if a != "--flash"]
    test, ref, tol = args[0], args[1], float(args[2])
    fails = []
    with h5py.File(test, "r") as ft, h5py.File(ref, "r") as fr:
        if ft.attrs["backend"] != "llama.cpp":
            fails.append(f"{test}: backend {ft.attrs['backend']}")
        keys = sorted(fr["passes"].keys())
        if sorted(ft["passes"].keys()) != keys:
            fails.append(f"passes {sorted(ft['passes'].keys())}, reference {keys}")
        worst = (0.0, "")
        for key in keys:
            if key in ft["passes"]:
                w = check_pass(ft["passes"][key], fr["passes"][key], key, tol, flash, show,
                               fails)
                worst = max(worst, w + (key,))
    for f in fails[:20]:
        print("FAIL:", f)
    if len(fails) > 20:
        print(f"FAIL: ... {len(fails) - 20} more")
    print(f"worst relative rms {worst[0]:.3g} ({worst[1]}, pass {worst[2] if len(worst) > 2 else '-'})")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
