"""leaky_mask.py - "another engine" whose causal mask reaches one key too
far (query t of a pass also sees key pos0 + t + 1), writing its dump with
plain h5py as docs/dump-api.md shows (a temporary name in the same
directory, renamed when complete).

usage: /usr/bin/python3 leaky_mask.py REF.h5 OUT.h5

The engine is a stand-in: for the model and tokens of REF.h5 (diverge's
cpu dump) it takes the reference's tensors as its own, except where the
mask bug acts, layer 0 of pass 0: blk.0.kq gets the finite score
q_rope[t] . k_rope[t + 1] / sqrt(hd) (kv head h / (H / Hkv)) where the
schema has -inf, and blk.0.kq_softmax and blk.0.attn_out follow from
those scores. Later tensors keep the reference's values (a real engine
would carry the error on; the test is about where it first shows).

Exit 0 when OUT.h5 is written, 1 with one line without h5py.
"""
import os
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:
    print("FAIL: %s (python3-h5py and python3-numpy; scripts/deps installs them)" % e)
    sys.exit(1)

# root attributes that describe the model, taken from the reference
MODEL_KEYS = ("arch", "n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "n_ff",
              "head_dim", "n_rot", "n_ctx_train", "rope_freq_base", "rope_type", "rms_eps",
              "model_path", "model_sha256")


def leak(pass_group):
    """Layer 0's scores, probabilities and attention output with the mask
    one key too far: {name: array}."""
    q = pass_group["blk.0.q_rope"][...].astype(np.float64)   # [T, H, hd]
    k = pass_group["blk.0.k_rope"][...].astype(np.float64)   # [T, Hkv, hd] (pos0 0)
    v = pass_group["blk.0.v"][...].astype(np.float64)        # [T, Hkv, hd]
    kq = pass_group["blk.0.kq"][...].astype(np.float64)      # [H, T, n_kv]
    T, H, hd = q.shape
    group = H // k.shape[1]
    pos0 = kq.shape[2] - T
    for h in range(H):
        for t in range(T):
            j = pos0 + t + 1
            if j < kq.shape[2]:
                kq[h, t, j] = q[t, h] @ k[j - pos0, h // group] / np.sqrt(hd)
    p = np.exp(kq - kq.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    out = np.stack([p[h] @ v[:, h // group] for h in range(H)], axis=1)  # [T, H, hd]
    return {"blk.0.kq": kq, "blk.0.kq_softmax": p, "blk.0.attn_out": out.reshape(T, H * hd)}


def main(ref_path, out_path):
    tmp = os.path.join(os.path.dirname(os.path.abspath(out_path)),
                       ".%s.%d.part" % (os.path.basename(out_path), os.getpid()))
    with h5py.File(ref_path, "r") as src, h5py.File(tmp, "w") as dst:
        a = dst.attrs
        a["schema"], a["schema_version"] = "diverge-dump", np.int64(1)
        a["tool_version"] = "leaky-mask-engine 0.1"
        a["created_utc"] = "2026-01-01T00:00:00Z"
        a["backend"] = "leaky-mask-engine"
        for key in MODEL_KEYS:
            if key in src.attrs:
                a[key] = src.attrs[key]
        passes = dst.create_group("passes")
        for name in sorted(src["passes"]):
            sg = src["passes"][name]
            g = passes.create_group(name)
            g.attrs["pos0"], g.attrs["n_tokens"] = sg.attrs["pos0"], sg.attrs["n_tokens"]
            g.create_dataset("tokens", data=sg["tokens"][...].astype(np.int32))
            changed = leak(sg) if name == "0000" else {}
            tensors = sorted((n for n in sg if n != "tokens"), key=lambda n: sg[n].attrs["order"])
            for n in tensors:
                ds = g.create_dataset(n, data=np.asarray(changed.get(n, sg[n][...]), np.float32))
                for key in ("layer", "op", "order"):
                    ds.attrs[key] = sg[n].attrs[key]
    os.replace(tmp, out_path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: leaky_mask.py REF.h5 OUT.h5")
    main(sys.argv[1], sys.argv[2])
