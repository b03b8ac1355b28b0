#!/usr/bin/env bash
# lsan_llama.sh - under the llama.cpp suppressions (llama_cpp.supp, the
# tests that load llama.cpp use them) LeakSanitizer is quiet about
# llama.cpp's, ggml's and lavapipe's own blocks and still reports ours.
# Runs only in the AddressSanitizer build with llama.cpp.
#   1. an engine on llama.cpp's CPU, one pass, freed: no report
#   2. the same on Vulkan0 (ggml's Vulkan backend on lavapipe): no report
#   3. an engine dropped without dv_engine_free: reported, dv_engine_open in the
#      stack (if this stops failing, cases 1 and 2 prove nothing)
set -uo pipefail
probe=$1 supp=$2
D=${DV_DIVERGE:?DV_DIVERGE must point at the diverge program}
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1}:detect_leaks=1
export LSAN_OPTIONS=suppressions=$supp:print_suppressions=0
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$D" fixture tiny-f32 -o "$T/tiny.gguf" >/dev/null || { echo "FAIL: fixture"; exit 1; }
. "$(dirname "$0")/check.sh"
check "llama.cpp CPU engine, freed" clean "" -- "$probe" llama CPU "$T/tiny.gguf"
check "llama.cpp Vulkan0 engine, freed" clean "" -- "$probe" llama Vulkan0 "$T/tiny.gguf"
check "our engine dropped" leak "in dv_engine_open " -- "$probe" llama-plant CPU "$T/tiny.gguf"
exit $fail
