#!/usr/bin/env bash
# dump_fuzz.sh - corrupt dumps never crash or hang `diverge info`: each
# gets exit 0 (the damage missed everything checked) or exit 2 with one
# line naming the file. The base is a committed dump (fixtures/dumps), so
# the seeds below reproduce: 52, 83, 222 and 484 crash HDF5 1.10.8 itself
# (damaged attribute table, global heap, chunk index) and 925 sends it
# into an endless loop; the reader's isolated check turns each into an
# error line.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3 # Debian's, whatever python3 comes first on PATH
base=$FX/dumps/tiny-k.h5

expect 0 "the base dump is valid" -- "$D" info "$base"

seeds="$(seq -s ' ' 0 99) 52 83 222 484 925"
# 3 random bytes replaced per file, from Python's seeded Mersenne Twister
"$PY" - "$base" "$T" $seeds <<'PYEOF'
import random, sys
base, out, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
data = open(base, 'rb').read()
for s in seeds:
    rng = random.Random(int(s))
    b = bytearray(data)
    for _ in range(3):
        b[rng.randrange(len(b))] = rng.randrange(256)
    open('%s/c%s.h5' % (out, s), 'wb').write(b)
PYEOF

n_zero=0 n_two=0
for s in $seeds; do
    f=$T/c$s.h5
    "$D" info "$f" >"$T/out" 2>"$T/err"
    rc=$?
    case $rc in
    0) n_zero=$((n_zero + 1)); ok "seed $s: no stderr on success" test ! -s "$T/err" ;;
    2) n_two=$((n_two + 1)); ok "seed $s: one error line naming the file" one_error_line "c$s.h5" ;;
    *) ok "seed $s: exit $rc ($(head -c 200 "$T/err"))" false ;;
    esac
    ok "seed $s: printable output" bash -c "! LC_ALL=C grep -q '[^[:print:][:space:]]' '$T/out'"
done
for s in 52 83 222 484; do
    "$D" info "$T/c$s.h5" >/dev/null 2>"$T/err"
    ok "seed $s: HDF5's crash is reported" grep -q "the HDF5 library crashed reading it" "$T/err"
done
"$D" info "$T/c925.h5" >/dev/null 2>"$T/err"
ok "seed 925: HDF5's endless loop is cut short" grep -q "did not finish reading it" "$T/err"
echo "corrupt dumps: $n_zero read cleanly, $n_two rejected"
finish
