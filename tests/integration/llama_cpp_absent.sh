#!/usr/bin/env bash
# llama_cpp_absent.sh - a diverge built without llama.cpp still knows the
# backend's name and says, in one line, why it cannot run it (exit 3);
# nothing is written.
. "$(dirname "$0")/lib.sh"
expect 0 "fixture" -- "$D" fixture tiny-f32 -o "$T/tiny.gguf"
for b in llama.cpp llama.cpp:CPU; do
    expect 3 "--backend $b" -- "$D" run "$T/tiny.gguf" --backend "$b" --dump "$T/x.h5"
    ok "$b: one line" one_error_line "llama.cpp: this diverge was built without llama.cpp ("
    ok "$b: no dump" test ! -e "$T/x.h5"
done
expect 0 "the help still lists it" -- "$D" run --help
ok "llama.cpp in the help" grep -q "llama.cpp\[:DEVICE\]" "$T/out"
finish
