#!/usr/bin/env bash
# stories.sh - the real trained model: import the llama2.c export, then greedy
# decoding from BOS must print what llama2.c's own program prints.
. "$(dirname "$0")/lib.sh"

want="Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
expect 0 "import" -- "$D" import-llama2c "$FX/data/stories260K.bin" "$FX/data/tok512.bin" -o "$T/st.gguf"
for b in cpu cpu-f64; do
    expect 0 "generate on $b" -- "$D" run "$T/st.gguf" --backend "$b" --generate 40
    ok "$b text" grep -qF "text: $want" "$T/out"
done
# the same prompt in three passes on one KV cache continues identically
expect 0 "generate after split prompt" -- "$D" run "$T/st.gguf" --prompt "Once upon a time" --passes 2,2,1 --generate 36
ok "split-prompt text" grep -qF "text: $want" "$T/out"
expect 2 "wrong tokenizer" -- "$D" import-llama2c "$FX/data/stories260K.bin" "$FX/data/stories260K.bin" -o "$T/x.gguf"
ok "one error line" one_error_line stories260K.bin
ok "nothing written" test ! -e "$T/x.gguf"
# generation stops at BOS, the story delimiter, where llama2.c's run.c
# stops: the first story is 345 tokens, then BOS (listed, as EOS would be)
expect 0 "generate to the end of the story" -- "$D" run "$T/st.gguf" --generate 400
ok "346 tokens, BOS last" grep -qE "^generated 346 tokens: 403 .* 1$" "$T/out"
ok "says why it stopped" grep -q "^stopped at BOS" "$T/out"
ok "one story" grep -qE '^Lily and her mom .*You are a good friend\."$' "$T/out"
ok "not the next one" test "$(grep -c "Once upon a time" "$T/out")" -eq 1
expect 0 "--no-stop-at-bos goes on" -- "$D" run "$T/st.gguf" --generate 400 --no-stop-at-bos
ok "400 tokens" grep -q "^generated 400 tokens:" "$T/out"
ok "a second story" test "$(grep -c "Once upon a time" "$T/out")" -eq 2

# a model file cut inside layer 4's wk (each matrix is stored for every
# layer in turn): the message names that tensor
head -c 250000 "$FX/data/stories260K.bin" >"$T/cut.bin"
expect 2 "cut model" -- "$D" import-llama2c "$T/cut.bin" "$FX/data/tok512.bin" -o "$T/x.gguf"
ok "names blk.4.attn_k.weight" one_error_line "cut.bin: file ends inside tensor blk.4.attn_k.weight "
finish
