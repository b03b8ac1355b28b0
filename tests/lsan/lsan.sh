#!/usr/bin/env bash
# lsan.sh - LeakSanitizer stays on for our code and off lavapipe's statics.
# Runs only in the AddressSanitizer build (tests/lsan/meson.build).
#   1. a real lavapipe device opened and closed: no report
#   2. a fake driver whose static cache is never freed, kept resident: no report
#   3. the same driver not kept resident: its 256-byte cache is reported
#      (the false positive of a fresh machine, reproduced on purpose: if
#      this stops failing, case 2 proves nothing). The frame that called
#      realloc is in the unmapped driver; the symbolizer names it
#      "<unknown module>" or whatever was mapped there since, so the test
#      matches the size, which only the fake driver allocates.
#   4. a dv_vk handle our code drops: reported, with dv_vk_open in the stack
set -uo pipefail
probe=$1 icd_json=$2
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1}:detect_leaks=1
. "$(dirname "$0")/check.sh"
check "lavapipe device, opened and closed" clean "" -- "$probe" lavapipe
check "driver cache, driver kept resident" clean "" -- \
    env VK_ICD_FILENAMES="$icd_json" "$probe" driver
check "driver cache, driver unloaded" leak "Direct leak of 256 byte(s) in 1 object" -- \
    env VK_ICD_FILENAMES="$icd_json" "$probe" driver-unpinned
check "our handle dropped" leak "dv_vk_open" -- "$probe" plant
exit $fail
