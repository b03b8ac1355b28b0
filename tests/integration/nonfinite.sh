#!/usr/bin/env bash
# nonfinite.sh - `diverge run` on models whose numbers turn NaN (what a
# broken kernel produces): on every backend, with stdout a pipe, the top
# tokens of the finite logits, a count of what is not finite, the tensor
# where it first appears, exit status 1; never a crash.
. "$(dirname "$0")/lib.sh"

expect 0 "fixture tiny-f32" -- "$D" fixture tiny-f32 -o "$T/m.gguf"
expect 0 "fixture small-f32" -- "$D" fixture small-f32 -o "$T/s.gguf"
# one NaN in output_norm.weight: every logit of every position is NaN
ok "poison output_norm" poison_nan "$T/m.gguf" "$T/norm.gguf" output_norm.weight 5
# one NaN in row 7 of the tied embedding: logit 7 is NaN, the rest finite
ok "poison the embedding" poison_nan "$T/m.gguf" "$T/row7.gguf" token_embd.weight $((64 * 7))

for b in cpu cpu-f64 vulkan; do
    expect_piped 1 "$b: NaN logits" -- "$D" run "$T/norm.gguf" --backend "$b" --tokens 1,2,3
    ok "$b: the output survives the pipe" grep -q "^backend  $b" "$T/out"
    ok "$b: no finite logit at pos 2" grep -qE "pos +2 .* -> no finite logit$" "$T/out"
    ok "$b: counted" grep -q "not finite: 256 NaN (first id 0), 0 +inf, 0 -inf of 256 logits$" "$T/out"
    ok "$b: summary" grep -q "^NOT FINITE: the logits of 3 of 3 positions hold NaN or +inf$" "$T/out"
    ok "$b: where it first appears" grep -q \
        "it first appears in pass 0, output_norm (rmsnorm, \[3, 64\]): 3 NaN, 0 inf, the first at flat index 5$" "$T/out"
    ok "$b: nothing on stderr" test ! -s "$T/err"
done

# a NaN among finite logits: the top tokens of the others, as without it
expect 0 "clean run" -- "$D" run "$T/m.gguf" --tokens 1,2,3
grep -E "^  pos " "$T/out" >"$T/clean-top"
expect_piped 1 "one NaN logit" -- "$D" run "$T/row7.gguf" --tokens 1,2,3 --generate 2 --dump "$T/d.h5"
grep -E "^  pos " "$T/out" >"$T/nan-top"
ok "same top tokens and probabilities" cmp -s "$T/clean-top" "$T/nan-top"
ok "NaN counted per position" test "$(grep -c "not finite: 1 NaN (first id 7), 0 +inf, 0 -inf of 256 logits; probabilities over the 255 finite ones" "$T/out")" -eq 3
ok "no generation from NaN logits" grep -q "^generation not run: the logits are not finite$" "$T/out"
ok "first in the logits" grep -q "it first appears in pass 0, logits (matmul, \[3, 256\]): 3 NaN, 0 inf, the first at flat index 7$" "$T/out"
ok "the dump is kept" test -s "$T/d.h5"
expect 0 "the dump holds the NaN" -- "$D" info "$T/d.h5"
ok "info counts 3 NaN in the logits" grep -qE " logits .* 3 +0$" "$T/out"

# NaN that appears during generation (the embedding row of the second
# generated token, 333, in small's untied model): generation stops there
expect 0 "clean generation" -- "$D" run "$T/s.gguf" --tokens 1,2,3 --generate 3
ok "the fixture generates 1237 333 ..." grep -q "^generated 3 tokens: 1237 333 " "$T/out"
ok "poison row 333" poison_nan "$T/s.gguf" "$T/g.gguf" token_embd.weight $((256 * 333))
expect_piped 1 "NaN while generating" -- "$D" run "$T/g.gguf" --tokens 1,2,3 --generate 3
ok "stops at the NaN" grep -q "^generation stopped: the logits at pos 4 (token 333) are not finite$" "$T/out"
ok "generated up to it" grep -q "^generated 2 tokens: 1237 333$" "$T/out"
ok "first in the pass of the token" grep -q "it first appears in pass 2, blk.0.attn_in (get_rows, \[1, 256\]): 1 NaN" "$T/out"
finish
