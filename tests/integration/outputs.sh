#!/usr/bin/env bash
# outputs.sh - where -o, --dump and --keep-dumps write: a character device
# or FIFO is written directly (reports) or refused (dumps and GGUF files)
# but never replaced; a symbolic link's target is replaced and the link
# kept; a dangling link, a directory, an output that is one of the
# command's inputs are refused with exit status 2 and one line; a
# replaced file keeps its mode. Nothing here touches /dev: the devices
# are the test's own (mknod, where allowed) and links into /proc.
. "$(dirname "$0")/lib.sh"

sha() { sha256sum <"$1"; }
kind() { stat -c %F "$1"; }
mode() { stat -c %a "$1"; }

expect 0 "fixture" -- "$D" fixture tiny -o "$T/m.gguf"
for b in cpu cpu-f64; do
    expect 0 "dump $b" -- "$D" run "$T/m.gguf" --backend "$b" --tokens 1,2,3 --dump "$T/$b.h5"
done
cp "$T/cpu.h5" "$T/test.h5"
CMP=("$D" compare "$T/test.h5" "$T/cpu.h5" --oracle "$T/cpu-f64.h5")
LOG=("$D" logits "$T/test.h5" "$T/cpu.h5")

# a FIFO: the report is written into it, the FIFO stays
mkfifo "$T/fifo"
# (a bounded reader: a diverge that replaced the FIFO never opens it)
timeout 60 cat "$T/fifo" >"$T/fifo.out" &
reader=$!
expect 0 "compare -o FIFO" -- "${CMP[@]}" -o "$T/fifo"
wait "$reader"
ok "the FIFO stays a FIFO" test "$(kind "$T/fifo")" = fifo
ok "the reader got the report" grep -q "^agree" "$T/fifo.out"
ok "no temporary file" test -z "$(find "$T" -name '.fifo.*')"
expect 2 "run --dump FIFO" -- "$D" run "$T/m.gguf" --dump "$T/fifo"
ok "one line: a dump needs a regular file" one_error_line "fifo: is a FIFO; a dump is written to a regular file"
expect 2 "fixture -o FIFO" -- "$D" fixture tiny -o "$T/fifo"
ok "one line: a GGUF needs a regular file" one_error_line "fifo: is a FIFO; a GGUF file is written to a regular file"
ok "the FIFO is still one" test "$(kind "$T/fifo")" = fifo

# a character device of our own (mknod needs CAP_MKNOD: root, as in CI)
if mknod "$T/null" c 1 3 2>/dev/null; then
    expect 0 "compare -o a null device" -- "${CMP[@]}" -o "$T/null"
    expect 0 "logits -o a null device" -- "${LOG[@]}" -o "$T/null"
    ok "still a character device" test "$(kind "$T/null")" = "character special file"
    expect 2 "--dump onto a device" -- "$D" run "$T/m.gguf" --dump "$T/null"
    ok "says what it is" one_error_line "null: is a character device"
    ok "still a character device" test "$(kind "$T/null")" = "character special file"
else
    echo "note: mknod not permitted here; the character device cases ran on the FIFO only"
fi

# a link to standard output (a pipe here): written through, the link kept
ln -s /proc/self/fd/1 "$T/stdout"
"${CMP[@]}" -o "$T/stdout" 2>"$T/err" | cat >"$T/piped"
ok "through the link into the pipe: exit 0" test "${PIPESTATUS[0]}" -eq 0
ok "the report came through" grep -q "^agree" "$T/piped"
ok "the link stays" test -L "$T/stdout"

# /dev/stdout is standard output as it is: appended to, not replaced
echo header >"$T/appended"
{ "${CMP[@]}" -o /dev/stdout; } >>"$T/appended" 2>"$T/err"
ok "-o /dev/stdout: exit 0" test $? -eq 0
ok "the file was appended to" test "$(head -1 "$T/appended")" = header
ok "the report follows" grep -q "^agree" "$T/appended"

# a link to a regular file: its target replaced, the link kept
echo old >"$T/target.txt"
ln -s target.txt "$T/link.txt"
expect 0 "compare -o a link" -- "${CMP[@]}" -o "$T/link.txt"
ok "the link stays a link" test -L "$T/link.txt"
ok "its target holds the report" grep -q "^agree" "$T/target.txt"
ln -s m.gguf "$T/link.gguf"
expect 0 "fixture -o a link" -- "$D" fixture tiny-q8_0 -o "$T/link.gguf"
ok "the link stays" test -L "$T/link.gguf"
expect 0 "the target is the new model" -- "$D" info "$T/m.gguf"
ok "q8_0" grep -qE "blk.0.attn_q.weight +q8_0" "$T/out"
expect 0 "fixture again" -- "$D" fixture tiny -o "$T/m.gguf"
ln -s dump-target.h5 "$T/link.h5"
: >"$T/dump-target.h5"
expect 0 "--dump to a link" -- "$D" run "$T/m.gguf" --dump "$T/link.h5"
ok "the link stays" test -L "$T/link.h5"
expect 0 "the target is the dump" -- "$D" info "$T/dump-target.h5"

# dangling links and directories are refused, nothing is created
ln -s nowhere/x "$T/dangling"
for c in "${CMP[*]} -o" "$D fixture tiny -o" "$D run $T/m.gguf --dump"; do
    expect 2 "dangling link: $c" -- $c "$T/dangling"
    ok "one line" one_error_line "dangling: a symbolic link to a missing file"
done
ok "the link is untouched" test "$(readlink "$T/dangling")" = nowhere/x
mkdir "$T/dir"
expect 2 "compare -o a directory" -- "${CMP[@]}" -o "$T/dir"
ok "one line" one_error_line "dir: is a directory"
expect 2 "fixture -o a directory" -- "$D" fixture tiny -o "$T/dir"
ok "one line" one_error_line "dir: is a directory"

# bisect --keep-dumps creates the directory with its parents, as mkdir -p
expect 0 "bisect --keep-dumps a/b/c" -- "$D" bisect "$T/m.gguf" --no-layer-split \
    --keep-dumps "$T/kd-a/b/c"
for f in test ref oracle; do
    ok "kd-a/b/c/$f.h5 written" test -s "$T/kd-a/b/c/$f.h5"
done

# a directory that is not there: exit 2 for -o as for --dump
for c in "${CMP[*]} -o" "${LOG[*]} -o" "$D fixture tiny -o" "$D run $T/m.gguf --dump"; do
    expect 2 "missing directory: $c" -- $c "$T/no/such/out"
    ok "one line" one_error_line "no/such/out"
done
expect 2 "missing directory: bisect -o" -- "$D" bisect "$T/m.gguf" -o "$T/no/such/out"
ok "one line" one_error_line "no/such/out"
ok "nothing created" test ! -e "$T/no"

# a replaced file keeps its mode
for f in r.txt r.gguf r.h5; do : >"$T/$f" && chmod 600 "$T/$f"; done
expect 0 "report onto a 0600 file" -- "${CMP[@]}" -o "$T/r.txt"
expect 0 "fixture onto a 0600 file" -- "$D" fixture tiny -o "$T/r.gguf"
expect 0 "dump onto a 0600 file" -- "$D" run "$T/m.gguf" --dump "$T/r.h5"
for f in r.txt r.gguf r.h5; do ok "$f keeps 600" test "$(mode "$T/$f")" = 600; done
ok "the report was written" grep -q "^agree" "$T/r.txt"

# an output that is one of the inputs: refused, the input untouched
ln "$T/m.gguf" "$T/hard.gguf"
h=$(sha "$T/m.gguf")
expect 2 "run --dump onto the model" -- "$D" run "$T/m.gguf" --dump "$T/m.gguf"
ok "names both" one_error_line "m.gguf: the output would replace the input .*m.gguf"
expect 2 "run --dump onto a hard link of the model" -- "$D" run "$T/m.gguf" --dump "$T/hard.gguf"
ok "names both" one_error_line "hard.gguf: the output would replace the input .*m.gguf"
ok "the model is untouched" test "$(sha "$T/m.gguf")" = "$h"
h=$(sha "$T/cpu.h5")
expect 2 "compare -o REF" -- "${CMP[@]}" -o "$T/cpu.h5"
ok "names both" one_error_line "cpu.h5: the output would replace the input .*cpu.h5"
ln -s cpu-f64.h5 "$T/link-oracle.h5"
expect 2 "compare -o ORACLE through a link" -- "${CMP[@]}" -o "$T/link-oracle.h5"
ok "names both" one_error_line "link-oracle.h5: the output would replace the input .*cpu-f64.h5"
expect 2 "logits -o TEST" -- "${LOG[@]}" -o "$T/test.h5"
ok "names both" one_error_line "test.h5: the output would replace the input .*test.h5"
ok "the reference is untouched" test "$(sha "$T/cpu.h5")" = "$h"
h=$(sha "$T/m.gguf")
expect 2 "bisect -o MODEL" -- "$D" bisect "$T/m.gguf" -o "$T/m.gguf"
ok "names both" one_error_line "m.gguf: the output would replace the input .*m.gguf"
mkdir "$T/kd" && ln -s ../m.gguf "$T/kd/ref.h5"
expect 2 "bisect --keep-dumps over the model" -- "$D" bisect "$T/m.gguf" --keep-dumps "$T/kd"
ok "names both" one_error_line "kd/ref.h5: the output would replace the input .*m.gguf"
ok "the model is untouched" test "$(sha "$T/m.gguf")" = "$h"
cp "$FX/data/stories260K.bin" "$T/st.bin"
cp "$FX/data/tok512.bin" "$T/tok.bin"
h=$(sha "$T/tok.bin")
expect 2 "import-llama2c -o TOKENIZER" -- "$D" import-llama2c "$T/st.bin" "$T/tok.bin" -o "$T/tok.bin"
ok "names both" one_error_line "tok.bin: the output would replace the input .*tok.bin"
ok "the tokenizer is untouched" test "$(sha "$T/tok.bin")" = "$h"

# A signal while a GGUF file is written (the README: SIGINT, SIGTERM and
# SIGHUP remove the temporary file): strace delivers the signal on the
# writer's first fsync(2), when the temporary file holds every byte and
# is not renamed yet - the same moment on every run, no polling.
if ! command -v strace >/dev/null; then
    echo "FAIL: strace is missing (bash scripts/deps installs it)"
    n_fail=$((n_fail + 1))
elif ! strace -o /dev/null true 2>/dev/null; then
    echo "FAIL: strace cannot trace here (ptrace not permitted): the signal cases need it"
    n_fail=$((n_fail + 1))
else
    mkdir "$T/sig"
    echo old >"$T/sig/m.gguf"
    for sig in INT TERM HUP; do
        strace -o /dev/null -e trace=fsync -e "inject=fsync:signal=$sig:when=1" \
            "$D" fixture small -o "$T/sig/m.gguf" >/dev/null 2>&1
        rc=$?
        ok "fixture, SIG$sig: killed by it (status $rc)" test "$rc" -eq $((128 + $(kill -l "$sig")))
        ok "fixture, SIG$sig: no temporary file left" test -z "$(find "$T/sig" -name '.m.gguf.*.part')"
        ok "fixture, SIG$sig: the old file is untouched" test "$(cat "$T/sig/m.gguf")" = old
    done
    strace -o /dev/null -e trace=fsync -e inject=fsync:signal=INT:when=1 \
        "$D" import-llama2c "$T/st.bin" "$T/tok.bin" -o "$T/sig/st.gguf" >/dev/null 2>&1
    rc=$?
    ok "import-llama2c, SIGINT: killed by it (status $rc)" test "$rc" -eq 130
    ok "import-llama2c, SIGINT: nothing left" test -z "$(ls -A "$T/sig" | grep -v '^m.gguf$')"
fi
# a bare file name: the temporary ".NAME.XXXXXX.part" goes in "." (its
# template is longer than the path given)
ok "fixture -o NAME in the working directory" bash -c "cd '$T' && '$D' fixture tiny-f32 -o bare.gguf >/dev/null"
ok "run --dump NAME in the working directory" bash -c "cd '$T' && '$D' run bare.gguf --tokens 1,2 --dump bare.h5 >/dev/null"
finish
