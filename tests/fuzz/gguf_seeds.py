#!/usr/bin/env python3
"""gguf_seeds.py - the small GGUF seeds of corpus/gguf, written from scratch
(an independent writer of GGUF v3, not the library's) so a fuzzer starts
from files that pass every check yet are a few KB, not the 70 KB of the
smallest `diverge fixture`.

A one-layer llama (d 32, 2 heads, 1 kv head, ffn 32, vocab 16 with an SPM
tokenizer: control, byte and merge tokens) in several weight types, plus
one file that has every metadata value type, nested arrays included, and
no tensors. Values come from a seeded Mersenne Twister: reruns write the
same bytes. Usage: gguf_seeds.py OUT_DIR
"""
import random
import struct
import sys

ALIGN = 32
# ggml type ids and their block layout (elements, bytes)
F32, F16, Q4_0, Q8_0 = 0, 1, 2, 8
BLOCK = {F32: (1, 4), F16: (1, 2), Q4_0: (32, 18), Q8_0: (32, 34)}
# GGUF value types
U8, I8, U16, I16, U32, I32, F32V, BOOL, STR, ARR, U64, I64, F64V = range(13)


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack('<Q', len(b)) + b


def scalar(vt, v):
    fmt = {U8: 'B', I8: 'b', U16: 'H', I16: 'h', U32: 'I', I32: 'i', F32V: 'f',
           BOOL: '?', U64: 'Q', I64: 'q', F64V: 'd'}[vt]
    return struct.pack('<' + fmt, v)


def value(vt, v):
    """The bytes of a value of type vt (arrays: v = (elem type, items))."""
    if vt == STR:
        return gstr(v)
    if vt == ARR:
        et, items = v
        return struct.pack('<IQ', et, len(items)) + b''.join(value(et, x) for x in items)
    return scalar(vt, v)


def kv(key, vt, v):
    return gstr(key) + struct.pack('<I', vt) + value(vt, v)


def f16(x):
    return struct.pack('<e', x)


def quant(t, xs):
    """Row xs (a multiple of the block size) stored as type t."""
    if t == F32:
        return b''.join(struct.pack('<f', x) for x in xs)
    if t == F16:
        return b''.join(f16(x) for x in xs)
    out = b''
    for i in range(0, len(xs), 32):
        blk = xs[i:i + 32]
        amax = max(abs(x) for x in blk) or 1.0
        if t == Q8_0:
            d = amax / 127
            out += f16(d) + bytes((round(x / d) & 0xff) for x in blk)
        else:  # Q4_0: q in 0..15 around 8, low nibbles first half, high second
            d = -amax / 8
            q = [min(15, max(0, round(x / d + 8))) for x in blk]
            out += f16(d) + bytes(q[j] | q[j + 16] << 4 for j in range(16))
    return out


def gguf(kvs, tensors):
    """kvs: list of kv() bytes; tensors: (name, ne, type, data bytes)."""
    head = b'GGUF' + struct.pack('<IQQ', 3, len(tensors), len(kvs)) + b''.join(kvs)
    infos, data = b'', b''
    for name, ne, t, blob in tensors:
        infos += gstr(name) + struct.pack('<I', len(ne)) + b''.join(struct.pack('<Q', n) for n in ne)
        infos += struct.pack('<IQ', t, len(data))
        data += blob + b'\0' * (-len(blob) % ALIGN)
    out = head + infos
    out += b'\0' * (-len(out) % ALIGN)
    return out + data


VOCAB = ['<unk>', '<s>', '</s>', '<0x0A>', '<0x41>', '\u2581', 'a', 'b', '\u2581a', 'ab',
         '\u2581ab', 'c', '\u2581c', '\u00e9', '\u2581b', 'ba']
TYPES = [2, 3, 3, 6, 6] + [1] * 11


def model(wtype, rng, tied=True):
    d, nh, nkv, ff, V = 32, 2, 1, 32, len(VOCAB)
    hd = d // nh
    kvs = [
        kv('general.architecture', STR, 'llama'),
        kv('general.name', STR, 'micro'),
        kv('general.alignment', U32, ALIGN),
        kv('llama.context_length', U32, 64),
        kv('llama.embedding_length', U32, d),
        kv('llama.block_count', U32, 1),
        kv('llama.feed_forward_length', U32, ff),
        kv('llama.attention.head_count', U32, nh),
        kv('llama.attention.head_count_kv', U32, nkv),
        kv('llama.rope.dimension_count', U32, hd),
        kv('llama.rope.freq_base', F32V, 10000.0),
        kv('llama.attention.layer_norm_rms_epsilon', F32V, 1e-5),
        kv('tokenizer.ggml.model', STR, 'llama'),
        kv('tokenizer.ggml.tokens', ARR, (STR, VOCAB)),
        kv('tokenizer.ggml.scores', ARR, (F32V, [-float(i) for i in range(V)])),
        kv('tokenizer.ggml.token_type', ARR, (I32, TYPES)),
        kv('tokenizer.ggml.bos_token_id', U32, 1),
        kv('tokenizer.ggml.eos_token_id', U32, 2),
        kv('tokenizer.ggml.unknown_token_id', U32, 0),
        kv('tokenizer.ggml.add_bos_token', BOOL, True),
    ]

    def mat(name, ne0, ne1, t=wtype):
        xs = [rng.uniform(-1, 1) for _ in range(ne0 * ne1)]
        blob = b''.join(quant(t, xs[r * ne0:(r + 1) * ne0]) for r in range(ne1))
        return (name, [ne0, ne1], t, blob)

    def vec(name, n):
        return (name, [n], F32, quant(F32, [1 + rng.uniform(-0.1, 0.1) for _ in range(n)]))

    ts = [mat('token_embd.weight', d, V), vec('output_norm.weight', d)]
    if not tied:
        ts.append(mat('output.weight', d, V))
    ts += [vec('blk.0.attn_norm.weight', d), mat('blk.0.attn_q.weight', d, nh * hd),
           mat('blk.0.attn_k.weight', d, nkv * hd), mat('blk.0.attn_v.weight', d, nkv * hd),
           mat('blk.0.attn_output.weight', nh * hd, d), vec('blk.0.ffn_norm.weight', d),
           mat('blk.0.ffn_gate.weight', d, ff), mat('blk.0.ffn_up.weight', d, ff),
           mat('blk.0.ffn_down.weight', ff, d)]
    return gguf(kvs, ts)


def every_type():
    kvs = [kv('general.architecture', STR, 'llama'),
           kv('t.u8', U8, 200), kv('t.i8', I8, -100), kv('t.u16', U16, 60000),
           kv('t.i16', I16, -30000), kv('t.u32', U32, 4000000000), kv('t.i32', I32, -2000000000),
           kv('t.f32', F32V, 0.5), kv('t.bool', BOOL, False), kv('t.str', STR, 'caf\u00e9\n'),
           kv('t.u64', U64, 2 ** 63), kv('t.i64', I64, -2 ** 62), kv('t.f64', F64V, 1e-300),
           kv('t.empty', ARR, (U8, [])),
           kv('t.nested', ARR, (ARR, [(U16, [1, 2]), (STR, ['x', '']), (ARR, [(I8, [-1])])])),
           kv('t.strs', ARR, (STR, ['', 'a\0b', '\u2581']))]
    return gguf(kvs, [])


def main():
    out = sys.argv[1]
    rng = random.Random(1)
    for name, t, tied in [('micro-f32', F32, True), ('micro-f16', F16, False),
                          ('micro-q8_0', Q8_0, True), ('micro-q4_0', Q4_0, False)]:
        with open('%s/%s.gguf' % (out, name), 'wb') as f:
            f.write(model(t, rng, tied))
    with open('%s/every-value-type.gguf' % out, 'wb') as f:
        f.write(every_type())


if __name__ == '__main__':
    main()
