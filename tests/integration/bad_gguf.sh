#!/usr/bin/env bash
# bad_gguf.sh - a corpus of broken GGUF files made from a good fixture: each
# must give exit status 2 and one error line naming the file, from both
# `diverge info` and `diverge run`, never a crash (run it under ASan/UBSan).
. "$(dirname "$0")/lib.sh"

good="$T/good.gguf"
"$D" fixture tiny-q8_0 -o "$good" >/dev/null || { echo "cannot make fixture"; exit 1; }
size=$(stat -c %s "$good")

# patch FILE OFFSET HEXBYTES: overwrite bytes in place ("ffff..." pairs).
patch() {
    printf "$(echo "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# variant NAME OFFSET HEX: a copy of the good file with one patch.
variant() {
    cp "$good" "$T/$1.gguf"
    patch "$T/$1.gguf" "$2" "$3"
}
check() {
    for cmd in info run; do
        if [ $cmd = info ]; then expect 2 "$1 ($cmd)" -- "$D" info "$T/$1.gguf"
        else expect 2 "$1 ($cmd)" -- "$D" run "$T/$1.gguf" --tokens 1; fi
        ok "$1 ($cmd): one line naming the file" one_error_line "$1.gguf"
    done
}

variant magic 0 47475846                     # "GGUF" -> "GGXF"
variant version1 4 01000000
variant version4 4 04000000
variant version-swapped 4 00000003
variant n-tensors-absurd 8 0000000000000040  # 2^62
variant n-kv-absurd 16 0000000000000040
variant key-len-absurd 24 0000000000000080   # 2^63
variant key-len-past-end 24 00000100000000   # 2^40
# first value type: after the key "general.architecture" (8 + 20 bytes)
variant vtype-13 52 0d000000
variant vtype-max 52 ffffffff
variant str-len-past-end 56 ffffffffffffff00
# tensor infos: find the first tensor's name in the header
pos=$(grep -obUa "token_embd.weight" "$good" | head -1 | cut -d: -f1)
nd=$((pos + 17)) ne0=$((pos + 21)) ne1=$((pos + 29)) ty=$((pos + 37)) off=$((pos + 41))
variant tensor-name-len $((pos - 8)) ffffffffffffff7f
variant n-dims-5 $nd 05000000
variant dim-negative $ne0 ffffffffffffffff
variant dims-overflow $ne1 0000000000000040  # 2^62 rows of 64
variant dims-huge $ne0 00000000ffffff00
variant type-99 $ty 63000000
variant type-q8-misfit $ne0 21000000          # 33 columns: not whole q8_0 blocks
variant offset-past-end $off 00000000ffff0000
variant offset-misaligned $off 01000000
for v in magic version1 version4 version-swapped n-tensors-absurd n-kv-absurd \
         key-len-absurd key-len-past-end vtype-13 vtype-max str-len-past-end \
         tensor-name-len n-dims-5 dim-negative dims-overflow dims-huge type-99 \
         type-q8-misfit offset-past-end offset-misaligned; do
    check "$v"
done

# truncated: at every byte of the first 512, every 61st byte through the
# rest of the header and the first tensor, and in the last tensor (the unit
# test of the reader cuts at every length)
data=$(( $(grep -obUa "output_norm.weight" "$good" | head -1 | cut -d: -f1) + 1024 ))
expect_cuts_rejected "$good" $(seq 0 511) $(seq 512 61 "$data") $(seq $((size - 300)) 37 $((size - 1)))
# a file that is not GGUF at all, an empty file, a directory
printf 'hello' >"$T/text.gguf"; check text
: >"$T/empty.gguf"; check empty
mkdir "$T/dir.gguf"; check dir
finish
