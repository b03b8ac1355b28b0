#!/usr/bin/env bash
# cli.sh - the diverge program end to end: help, fixtures, info, run,
# pass schedules, generation, exit statuses.
. "$(dirname "$0")/lib.sh"

expect 0 "top-level help" -- "$D" --help
ok "help lists run" grep -q "run" "$T/out"
expect 2 "no command" -- "$D"
expect 2 "unknown command" -- "$D" frobnicate
for c in run info fixture import-llama2c; do
    expect 0 "$c --help" -- "$D" "$c" --help
    ok "$c --help prints usage" grep -q "usage: diverge $c" "$T/out"
done
expect 0 "version" -- "$D" --version

# fixtures: deterministic, every type, listed
expect 0 "fixture list" -- "$D" fixture --list
ok "list names tinyllama-shape" grep -q tinyllama-shape "$T/out"
ok "the list, not the help" test "$(grep -c . "$T/out")" -eq 3
ok "one fixture a line, its name first" test "$(awk '{print $1}' "$T/out" | tr '\n' ' ')" = "tiny small tinyllama-shape "
for ty in f32 f16 q8_0 q4_0 q4_k q6_k; do
    expect 0 "fixture tiny-$ty" -- "$D" fixture "tiny-$ty" -o "$T/tiny-$ty.gguf"
done
expect 0 "fixture again" -- "$D" fixture tiny-q4_0 -o "$T/again.gguf"
ok "byte-identical" cmp -s "$T/tiny-q4_0.gguf" "$T/again.gguf"
expect 2 "unknown fixture" -- "$D" fixture huge -o "$T/x.gguf"
expect 2 "fixture without -o" -- "$D" fixture tiny
expect 2 "fixture into a missing directory" -- "$D" fixture tiny -o "$T/no/such/dir/x.gguf"
ok "one error line" one_error_line "no/such/dir/x.gguf"
ok "no partial file" test ! -e "$T/no/such/dir/x.gguf"

# info
expect 0 "info" -- "$D" info "$T/tiny-q8_0.gguf"
ok "info shows config" grep -q "config (llama): d_model 64, layers 2, heads 4, kv heads 2" "$T/out"
ok "info shows q8_0 tensor" grep -qE "blk.0.attn_q.weight +q8_0 +\[64, 64\]" "$T/out"
# a crafted tensor name with a terminal escape sequence (ESC [31m, same
# length as the name it replaces) is printed escaped, like key names
off=$(grep -obUa "output_norm.weight" "$T/tiny-f32.gguf" | head -1 | cut -d: -f1)
cp "$T/tiny-f32.gguf" "$T/esc.gguf"
printf '\033[31mput_norm.weig' | dd of="$T/esc.gguf" bs=1 seek="$off" conv=notrunc status=none
expect 0 "info with an escape sequence in a tensor name" -- "$D" info "$T/esc.gguf"
ok "no ESC byte on the terminal" test "$(tr -dc '\033' <"$T/out" | wc -c)" -eq 0
ok "the name escaped" grep -qF '\x1b[31mput_norm.weig ' "$T/out"
expect 2 "info on a missing file" -- "$D" info "$T/missing.gguf"
ok "one error line" one_error_line missing.gguf

# run: tokens, prompt, passes, backends
expect 0 "run tokens" -- "$D" run "$T/tiny-f32.gguf" --tokens 1,20,30,40
ok "top-5 printed for the last position" grep -qE "pos +3 " "$T/out"
cp "$T/out" "$T/one-pass"
expect 0 "run with passes" -- "$D" run "$T/tiny-f32.gguf" --tokens 1,20,30,40 --passes 3,1
ok "pass 1 of 2" grep -q "pass 1 of 2 (pos0 3, 1 tokens)" "$T/out"
expect 0 "run cpu-f64" -- "$D" run "$T/tiny-q4_k.gguf" --backend cpu-f64 --prompt "Once upon a time"
ok "prompt tokenized" grep -qE "^tokens +1 " "$T/out"
expect 0 "generate" -- "$D" run "$T/tiny-q8_0.gguf" --generate 5
ok "generated 5" grep -q "generated 5 tokens" "$T/out"
expect 2 "passes do not add up" -- "$D" run "$T/tiny-f32.gguf" --tokens 1,2,3 --passes 2,2
ok "says why" grep -q "adds up to 4 tokens but there are 3" "$T/err"
expect 2 "token out of range" -- "$D" run "$T/tiny-f32.gguf" --tokens 1,256
ok "names the token" grep -q "token 256" "$T/err"
expect 2 "junk token" -- "$D" run "$T/tiny-f32.gguf" --tokens 1,x
expect 2 "empty token item" -- "$D" run "$T/tiny-f32.gguf" --tokens 1,,2
expect 2 "negative generate" -- "$D" run "$T/tiny-f32.gguf" --generate -1
expect 2 "bad backend" -- "$D" run "$T/tiny-f32.gguf" --backend gpu
expect 2 "tokens and prompt" -- "$D" run "$T/tiny-f32.gguf" --tokens 1 --prompt hi
expect 2 "zero-token pass" -- "$D" run "$T/tiny-f32.gguf" --tokens 1,2 --passes 2,0
finish
