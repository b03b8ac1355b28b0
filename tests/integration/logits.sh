#!/usr/bin/env bash
# logits.sh - `diverge logits` end to end on the real stories260K model:
# the Vulkan backend (lavapipe here) against the cpu reference over a
# 4-pass schedule agrees (exit 0, every top-1 the same, KL figures), the
# JSON parses and carries every field, an injected fault flips top-1s
# (exit 1, listed), and bad input exits 2 with one error line (NaN in the
# reference's logits included).
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
P="Once upon a time, there was a little girl" # 13 tokens with BOS

expect 0 "import" -- "$D" import-llama2c "$FX/data/stories260K.bin" "$FX/data/tok512.bin" -o "$T/st.gguf"
run_dump() { # run_dump OUT.h5 ARGS...: the prompt as passes 6,5,1,1 into OUT.h5
    local out=$1
    shift
    expect 0 "run $* --dump $out" -- "$D" run "$T/st.gguf" --prompt "$P" --passes 6,5,1,1 \
        --dump "$T/$out" "$@"
}
run_dump ref.h5 --backend cpu
run_dump test.h5 --backend vulkan
run_dump fault.h5 --backend vulkan --inject rope-neox-swap

# cpu against vulkan: the same top-1 everywhere, KL at f32 noise
expect 0 "logits agree" -- "$D" logits "$T/test.h5" "$T/ref.h5"
ok "all 13 positions compared" grep -q "^passes: 4 compared, 13 positions" "$T/out"
ok "100% same top-1" grep -qF "Same top-1 : 100.000 ± 0.000 %  (13 of 13)" "$T/out"
ok "KL figures" grep -qE "^Mean    KLD: +[0-9.e+-]+ ± " "$T/out"
ok "KL max" grep -qE "^Maximum KLD: +[0-9.e+-]+  \(pass [0-9]+, pos [0-9]+\)" "$T/out"
ok "no flips" grep -qF "flipped top-1: 0 of 13 positions (none)" "$T/out"
ok "vocab from the dump's model_path" grep -qE "^vocab:  /.*/st.gguf \(512 tokens\)" "$T/out"
ok "token texts" grep -qF '" Once"' "$T/out"
ok "no colour into a pipe" bash -c "! grep -q $'\033' '$T/out'"

expect 0 "logits json" -- "$D" logits "$T/test.h5" "$T/ref.h5" --format json --top-k 3
ok "json parses and has the fields" "$PY" -c '
import json, sys
d = json.load(sys.stdin)
assert d["schema"] == "diverge-logits" and d["top_k"] == 3 and d["n_vocab"] == 512
assert [p["n_tokens"] for p in d["passes"]] == [6, 5, 1, 1] and d["not_compared"] == []
assert len(d["positions"]) == 13 and d["flipped"] == []
for p in d["positions"]:
    assert p["status"] == "ok" and p["rank"] == 1 and p["same_top1"]
    assert len(p["ref_top"]) == 3 and len(p["test_top"]) == 3
    assert p["ref_top"][0]["id"] == p["test_top"][0]["id"] and p["ref_top"][0]["text"]
    assert 0 <= p["kl"] < 1e-6 and p["max_abs_dp"] < 1e-4
s = d["summary"]
assert s["n_positions"] == 13 and s["n_flipped"] == 0 and s["same_top1_frac"] == 1
assert 0 <= s["kl_median"] <= s["kl_p90"] <= s["kl_p99"] <= s["kl_max"] < 1e-6
for k in ("kl_mean", "kl_se", "dp_rms", "dp_rms_se", "overlap_frac", "max_abs_dp"):
    assert isinstance(s[k], float), k
assert d["test"]["backend"] == "vulkan" and d["ref"]["backend"] == "cpu"
' <"$T/out"

# the report into a file: complete, nothing else left behind
expect 0 "logits -o" -- "$D" logits "$T/test.h5" "$T/ref.h5" -o "$T/report.txt"
ok "report written" grep -q "^Same top-1 : 100.000" "$T/report.txt"
ok "no temporary left" bash -c "! ls -a '$T' | grep -q '\.part$'"
expect 0 "one pass" -- "$D" logits "$T/test.h5" "$T/ref.h5" --pass 1
ok "pass 1 alone" grep -q "^passes: 1 compared, 5 positions: 1 (pos0 6, 5 tokens)" "$T/out"

# a fault: some top-1s flip; each is listed, text and JSON
expect 1 "logits with rope-neox-swap" -- "$D" logits "$T/fault.h5" "$T/ref.h5"
ok "fault recorded" grep -qF "fault injected: rope-neox-swap" "$T/out"
n=$(sed -n 's/^flipped top-1: \([0-9]*\) of 13 positions$/\1/p' "$T/out")
ok "several flips ($n)" test "${n:-0}" -ge 2
ok "each flip listed" test "$(grep -cE '^  pass [0-9]+, pos [0-9]+: ref top-1 ' "$T/out")" -eq "${n:-0}"
ok "flipped rows marked" test "$(grep -c '^\*' "$T/out")" -eq "${n:-0}"
expect 1 "fault json" -- "$D" logits "$T/fault.h5" "$T/ref.h5" --format json
ok "json lists the flips" "$PY" -c '
import json, sys
d = json.load(sys.stdin)
f, s = d["flipped"], d["summary"]
assert len(f) == s["n_flipped"] == '"${n:-0}"' and s["same_top1_frac"] < 1
rows = {(p["pass"], p["pos"]): p for p in d["positions"]}
for x in f:
    p = rows[(x["pass"], x["pos"])]
    assert not p["same_top1"] and p["rank"] > 1 and x["reason"] == "top-1 differs"
    assert x["test_top1"] == p["test_top"][0]["id"] != x["ref_top1"]
' <"$T/out"

# the vocab: none when model_path is gone (said once), --model restores it
mv "$T/st.gguf" "$T/moved.gguf"
expect 0 "logits without the model" -- "$D" logits "$T/test.h5" "$T/ref.h5"
ok "vocab none, why" grep -qE "^vocab:  none \(model file not found: /.*/st.gguf\)" "$T/out"
ok "ids only" bash -c "! grep -qF '\" Once\"' '$T/out'"
expect 0 "logits --model" -- "$D" logits "$T/test.h5" "$T/ref.h5" --model "$T/moved.gguf"
ok "vocab from --model" grep -qF '" Once"' "$T/out"
mv "$T/moved.gguf" "$T/st.gguf"

# passes that differ are listed, the rest compared
expect 0 "other schedule" -- "$D" run "$T/st.gguf" --prompt "$P" --passes 6,5,2 --backend vulkan --dump "$T/sched.h5"
expect 0 "logits over part of the passes" -- "$D" logits "$T/sched.h5" "$T/ref.h5"
ok "two passes compared" grep -q "^passes: 2 compared, 11 positions" "$T/out"
ok "pass 2 differs" grep -q "^not compared: pass 2: positions-differ" "$T/out"
ok "pass 3 missing" grep -q "^not compared: pass 3: only-in-ref" "$T/out"

# NaN and +inf in the test's logits (h5py edits a copy): flips, exit 1
if "$PY" -c 'import h5py' 2>/dev/null; then
    cp "$T/test.h5" "$T/nan.h5"
    "$PY" -c '
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    d = f["passes/0000/logits"]
    a = d[...]
    a[2, 7] = np.nan
    a[4, :] = np.inf
    d[...] = a
' "$T/nan.h5"
    expect 1 "logits with NaN" -- "$D" logits "$T/nan.h5" "$T/ref.h5"
    ok "NaN position listed" grep -qF "pass 0, pos 2: test logits not finite (1 NaN, 0 +inf)" "$T/out"
    ok "+inf position listed" grep -qF "pass 0, pos 4: test logits not finite (0 NaN, 512 +inf)" "$T/out"
    ok "KL over the finite rest" grep -q "^====== summary: 13 positions, 11 with finite" "$T/out"
    ok "counted" grep -q "^Not finite : 2 positions with test logits NaN/Inf" "$T/out"
    # NaN in the reference's logits: no distribution to judge against, so
    # bad input (exit 2, one line), never "0 of 0 positions" and exit 0
    cp "$T/ref.h5" "$T/nanref.h5"
    cp "$T/ref.h5" "$T/allnan.h5"
    "$PY" -c '
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    d = f["passes/0001/logits"]
    a = d[...]
    a[2, :] = np.nan
    d[...] = a
with h5py.File(sys.argv[2], "r+") as f:
    for p in f["passes"].values():
        p["logits"][...] = np.full(p["logits"].shape, np.nan, np.float32)
' "$T/nanref.h5" "$T/allnan.h5"
    expect 2 "a reference position with NaN logits" -- "$D" logits "$T/test.h5" "$T/nanref.h5"
    ok "one error line naming it" one_error_line \
        "nanref.h5: pass 1, t=2 (pos 8): the reference logits hold 512 NaN and 0 +inf (1 of 13 positions are so)"
    expect 2 "an all-NaN reference" -- "$D" logits "$T/test.h5" "$T/allnan.h5"
    ok "one error line naming it" one_error_line "allnan.h5: pass 0, t=0 (pos 0): the reference logits hold 512 NaN and 0 +inf (13 of 13 positions are so)"
fi

# bad input: exit 2, one line naming the file or the option
expect 2 "missing file" -- "$D" logits "$T/missing.h5" "$T/ref.h5"
ok "one error line" one_error_line missing.h5
expect 2 "not a dump" -- "$D" logits "$T/test.h5" "$T/st.gguf"
ok "one error line" one_error_line st.gguf
expect 2 "top-k 0" -- "$D" logits "$T/test.h5" "$T/ref.h5" --top-k 0
ok "one error line" one_error_line top-k
expect 2 "pass 99" -- "$D" logits "$T/test.h5" "$T/ref.h5" --pass 99
ok "one error line" one_error_line "test.h5: no pass 99"
expect 0 "dump without logits" -- "$D" run "$T/st.gguf" --prompt "$P" --dump "$T/nolog.h5" --select 'blk.0.*'
expect 2 "logits of a dump without logits" -- "$D" logits "$T/nolog.h5" "$T/ref.h5"
ok "one error line" one_error_line "nolog.h5: no 'logits' tensor"
expect 0 "one-pass dump" -- "$D" run "$T/st.gguf" --prompt "$P" --dump "$T/one.h5"
expect 2 "logits with no pass in common" -- "$D" logits "$T/one.h5" "$T/ref.h5"
ok "one error line" one_error_line "no pass with logits in common"
expect 0 "tiny fixture" -- "$D" fixture tiny -o "$T/tiny.gguf"
expect 0 "tiny dump" -- "$D" run "$T/tiny.gguf" --tokens 1,2,3 --dump "$T/tiny.h5"
expect 2 "n_vocab differs" -- "$D" logits "$T/tiny.h5" "$T/ref.h5"
ok "one error line naming both" bash -c "one_line() { [ \$(wc -l <'$T/err') -eq 1 ]; }; one_line && grep -q 'tiny.h5.*ref.h5' '$T/err'"
expect 2 "one file" -- "$D" logits "$T/test.h5"
expect 2 "unknown format" -- "$D" logits "$T/test.h5" "$T/ref.h5" --format xml
expect 0 "help" -- "$D" logits --help
ok "help" grep -q "usage: diverge logits TEST.h5 REF.h5" "$T/out"
finish
