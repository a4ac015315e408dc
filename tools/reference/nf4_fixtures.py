#!/usr/bin/env python3
"""Reference fixtures for src/quant/nf4*.c: 4-bit NF4 / FP4 quantization with
double quantization exactly as bitsandbytes does it on the CPU, and the
safetensors keys that bitsandbytes and transformers write for a 4-bit weight.
Nothing expected here comes from libinternlm.

    .venv-ref/bin/python tools/reference/nf4_fixtures.py

The virtualenv (outside git: python3 -m venv .venv-ref; .venv-ref/bin/pip
install torch bitsandbytes transformers safetensors numpy) held torch 2.15,
bitsandbytes 0.50.2 and transformers 5.25.  In bitsandbytes 0.50.2 the CPU
quantize_4bit is its torch-native "default" kernel and the 8-bit
quantize_blockwise of the nested absmax is the C++ kernel in
libbitsandbytes_cpu.so; dequantized values are taken from its torch-native
path (see torch_dequant()).  See tests/fixtures/README.md.

Inputs come from a counter-based generator that the C test repeats bit for
bit (see gen()): splitmix64 of (seed << 32) + i, two 24-bit uniforms u1, u2,
x = (u1 - 0.5) * (1 + 15 * (u2*u2)^2) * 2^(row % 5 - 2) * scale, every step
rounded to float32.  torch runs on one thread unless a case says otherwise:
bitsandbytes' offset is torch's float32 mean of the absmax, whose summation
order depends on torch's thread count for more than 32768 blocks.

Writes under tests/fixtures/nf4/:
  nf4.json              "tables": the NF4 and FP4 code values, the dynamic
                        map (create_dynamic_map) and the 8-bit kernel's
                        decision thresholds (for each j < 255 the smallest
                        float32 v in [-1, 1] that it maps to a code > j,
                        with the codes it gives v and the float below v);
                        "cases": one per quantized tensor (layout in README);
                        "repr": float32 values and Python's repr of them
                        (how nested_offset is written into the JSON).
                        "sums": torch's float32 sum and mean of |gen()| of
                        several lengths on 1 to 4 threads.
  linear_nf4.safetensors  Linear4bit(72 -> 40, bias) state_dict, nested NF4,
                        weights from gen(seed 101); linear_fp4_plain: FP4 without
                        double quant (seed 102); linear_nf4_bf16: bf16 weights,
                        nested NF4 (seed 103).  Saved with safetensors'
                        save_file, as transformers does.
  hf_llama/             a tiny LlamaForCausalLM quantized by transformers
                        (BitsAndBytesConfig nf4 + double quant, fp32) and saved
                        with save_pretrained: config.json, model.safetensors;
                        hf_llama.json has per quantized weight the FNV-1a 64
                        hash of bitsandbytes' dequantized float32 values.
  hf_llama64/           the same recipe at hidden 64 (rows as long as a block,
                        where bitsandbytes' C++ kernel dequantizes correctly),
                        hf_llama64_fp32/ the model before quantization, and
                        "hf_llama64_logits" in nf4.json: the logits of a few ids
                        through the quantized model (transformers + bitsandbytes
                        on the CPU, eager attention, float32 compute).
"""
import json
import os
import shutil
import tempfile

# bitsandbytes wraps its torch-native dequantization in torch.compile; eager
# mode computes the same float32 products and skips minutes of compiling.
os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")

import numpy as np
import torch
import bitsandbytes as bnb
import bitsandbytes.functional as F
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "nf4")
f32 = np.float32
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def fnv1a64(b: bytes) -> str:
    h = 0xcbf29ce484222325
    for byte in b:
        h ^= byte
        h = (h * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


def fnv1a64_big(a: np.ndarray) -> str:
    # The same hash, vectorised over 8 interleaved lanes would change it; so
    # go through bytes, in chunks, only for the one large case.
    return fnv1a64(a.tobytes())


def hexf(a) -> str:
    return np.ascontiguousarray(a, dtype=np.float32).tobytes().hex()


def bits(v) -> str:
    return "%08x" % np.array([v], dtype=np.float32).view(np.uint32)[0]


def splitmix64(z):
    z = (z + np.uint64(0x9E3779B97F4A7C15)) & M64
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & M64
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & M64
    return z ^ (z >> np.uint64(31))


def gen(seed, shape, scale):
    """The seeded input: see the module docstring.  Row = index / last dim."""
    n = int(np.prod(shape)) if len(shape) else 1
    cols = shape[-1] if len(shape) else 1
    with np.errstate(over="ignore"):
        i = np.arange(n, dtype=np.uint64)
        h = splitmix64((np.uint64(seed) << np.uint64(32)) + i)
    u1 = (h >> np.uint64(40)).astype(np.float32) * f32(2.0 ** -24)
    u2 = ((h >> np.uint64(16)) & np.uint64(0xFFFFFF)).astype(np.float32) * f32(2.0 ** -24)
    t = u2 * u2
    t = t * t
    s = f32(1) + f32(15) * t
    rows = np.arange(n, dtype=np.int64) // cols
    p2 = np.ldexp(f32(1), (rows % 5 - 2)).astype(np.float32)
    x = (u1 - f32(0.5)) * s
    x = x * p2
    x = x * f32(scale)
    return x.astype(np.float32).reshape(shape)


def patch(x, how, bs):
    x = x.reshape(-1).copy()
    if how == "zero_blocks":
        x[:bs] = 0                       # a whole block of zeros
        x[-(len(x) % bs or bs):] = 0     # and the short last block
    elif how == "constant":
        x[:] = 0.75                      # every absmax equal: nested input 0
    elif how == "specials":
        x[3] = np.nan                    # NaN absmax: the block's codes are 15
        x[bs + 1] = np.inf               # inf absmax: inf/inf is NaN
        x[2 * bs + 2] = -np.inf
        x[3 * bs + 5] = np.float32(1e-40)  # a block of subnormals and zeros
        x[3 * bs:3 * bs + 5] = 0
        x[3 * bs + 6:4 * bs] = 0
    elif how == "ties":
        # values on the midpoints between NF4 codes (times absmax 1)
        code = F.get_4bit_type("nf4", device="cpu").numpy()
        mids = ((code[:-1] + code[1:]) / f32(2)).astype(np.float32)
        for k in range(len(x)):
            if k % bs == 0:
                x[k] = 1.0
            else:
                x[k] = mids[k % 15] if k % 3 else -mids[k % 15]
    return x


CASES = [
    # name, shape, blocksize, quant_type, nested, input dtype, scale, seed, patch, threads
    ("nf4_64x64", (64, 64), 64, "nf4", True, "float32", 0.1, 1, None, 1),
    ("nf4_odd_33x77", (33, 77), 64, "nf4", True, "float32", 1.0, 2, None, 1),
    ("nf4_1d_32805", (32805,), 64, "nf4", True, "float32", 0.02, 3, None, 1),
    ("nf4_bs32_96x128", (96, 128), 32, "nf4", True, "float32", 3.0, 4, None, 1),
    ("nf4_bs128_plain", (40, 100), 128, "nf4", False, "float32", 1.0, 5, None, 1),
    ("nf4_tiny_17", (17,), 64, "nf4", True, "float32", 1.0, 6, None, 1),
    ("nf4_3blocks", (3, 64), 64, "nf4", True, "float32", 1.0, 7, None, 1),
    ("nf4_bs256", (30, 100), 256, "nf4", True, "float32", 0.5, 8, None, 1),
    ("nf4_bs512_plain", (3001,), 512, "nf4", False, "float32", 0.5, 9, None, 1),
    ("nf4_bs1024", (7, 333), 1024, "nf4", True, "float32", 0.5, 10, None, 1),
    ("nf4_bs2048", (5000,), 2048, "nf4", True, "float32", 0.5, 11, None, 1),
    ("nf4_bs4096_plain", (2, 4500), 4096, "nf4", False, "float32", 0.5, 12, None, 1),
    ("nf4_zero_blocks", (4 * 64 + 10,), 64, "nf4", True, "float32", 1.0, 13, "zero_blocks", 1),
    ("nf4_constant", (8, 64), 64, "nf4", True, "float32", 1.0, 14, "constant", 1),
    ("nf4_specials", (5, 64), 64, "nf4", False, "float32", 1.0, 15, "specials", 1),
    ("nf4_ties", (4, 64), 64, "nf4", False, "float32", 1.0, 16, "ties", 1),
    ("nf4_bf16_48x80", (48, 80), 64, "nf4", True, "bfloat16", 0.05, 17, None, 1),
    ("nf4_f16_20x64", (20, 64), 64, "nf4", True, "float16", 0.05, 18, None, 1),
    ("nf4_small_1e-6", (16, 64), 64, "nf4", True, "float32", 1e-6, 19, None, 1),
    ("fp4_64x64", (64, 64), 64, "fp4", True, "float32", 0.1, 20, None, 1),
    ("fp4_odd_plain", (33, 77), 64, "fp4", False, "float32", 1.0, 21, None, 1),
    # More than 32768 blocks: torch sums the absmax on 2 threads in 2 chunks.
    ("nf4_big_2t", (2_100_013,), 64, "nf4", True, "float32", 0.05, 22, None, 2),
    ("nf4_big_1t", (2_100_013,), 64, "nf4", True, "float32", 0.05, 22, None, 1),
]
BIG = 200_000  # cases above this many elements store hashes only


def run_case(c):
    name, shape, bs, qt, nested, dt, scale, seed, how, threads = c
    torch.set_num_threads(threads)
    x = gen(seed, shape, scale)
    if how:
        x = patch(x, how, bs).reshape(shape)
    xt = torch.from_numpy(x.copy())
    if dt == "bfloat16":
        xt = xt.to(torch.bfloat16)
    elif dt == "float16":
        xt = xt.to(torch.float16)
    xin = xt.float().numpy().reshape(-1)      # what the quantizer sees
    packed, st = F.quantize_4bit(xt, blocksize=bs, compress_statistics=nested, quant_type=qt)
    plain, st_plain = F.quantize_4bit(xt, blocksize=bs, compress_statistics=False, quant_type=qt)
    assert torch.equal(packed, plain)
    deq_native = F.dequantize_4bit(packed, st).reshape(-1)   # in the input's dtype
    n = xin.size
    d = {
        "name": name, "shape": list(shape), "blocksize": bs, "quant_type": qt, "nested": nested,
        "dtype": dt, "scale": bits(scale), "seed": seed, "patch": how, "torch_threads": threads,
        "n": n, "n_blocks": int(st_plain.absmax.numel()),
        "input_fnv": fnv1a64(xin.tobytes()),
        "packed_fnv": fnv1a64(packed.numpy().tobytes()),
        "absmax_fnv": fnv1a64(st_plain.absmax.numpy().tobytes()),
    }
    assert packed.dtype == torch.uint8 and tuple(packed.shape) == ((n + 1) // 2, 1)
    if nested:
        d["offset"] = bits(st.offset.item())
        d["qabsmax_fnv"] = fnv1a64(st.absmax.numpy().tobytes())
        d["nested_absmax_fnv"] = fnv1a64(st.state2.absmax.numpy().tobytes())
        d["nested_blocksize"] = st.state2.blocksize
        # bitsandbytes' own dequantized absmax, before the 4-bit step
        am = F.dequantize_blockwise(st.absmax, st.state2) + st.offset
        d["absmax_deq_fnv"] = fnv1a64(am.float().numpy().tobytes())
        assert torch.equal(st.state2.code, F.create_dynamic_map())
    if n <= BIG:
        d["packed"] = packed.numpy().tobytes().hex()
        d["absmax"] = hexf(st_plain.absmax.numpy())
        if nested:
            d["qabsmax"] = st.absmax.numpy().tobytes().hex()
            d["nested_absmax"] = hexf(st.state2.absmax.numpy())
    ref = torch_dequant(packed, st)
    d["native_agrees"] = bool(torch.equal(ref.to(deq_native.dtype).view(torch.uint8).reshape(-1),
                                          deq_native.view(torch.uint8).reshape(-1)))
    deq_native = ref.to(deq_native.dtype)
    deq = ref.numpy()
    d["dequant_fnv"] = fnv1a64(deq.tobytes())
    d["dequant_first"] = [bits(v) for v in deq[:16]]
    if dt != "float32":
        d["dequant_dtype_fnv"] = fnv1a64(deq_native.view(torch.uint8).numpy().tobytes())
    torch.set_num_threads(1)
    return d


def torch_dequant(packed, st):
    """bitsandbytes' torch-native dequantization to float32 (its default
    backend, which its CPU backend itself falls back to for odd last
    dimensions): nested absmax = dequantize_blockwise + offset, then
    code[nibble] * absmax.  0.50.2's C++ kernel on AVX-512 gets whole rows
    wrong when a row is shorter than a block (e.g. [32, 32] at blocksize 64),
    writes FP4's slot 8 as -0.0 for some shapes, and its bf16 output is off
    too; the fixtures keep this path and record whether the C++ kernel
    agreed ("native_agrees")."""
    from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
    am = (F.dequantize_blockwise(st.absmax, st.state2) + st.offset) if st.nested else st.absmax
    code = F.get_4bit_type(st.quant_type, device="cpu")
    return _dequantize_4bit_compute(packed.reshape(-1), am.float(), code, st.blocksize,
                                    tuple(st.shape), torch.float32).reshape(-1)


def thresholds(code):
    """For j < 255 the smallest float32 v that bitsandbytes' CPU 8-bit
    kernel maps to j + 1 (v probed as the element of a block whose absmax
    is 1, so the kernel's v / absmax is v itself)."""
    def key(v):
        u = np.asarray(v, np.float32).view(np.int32).astype(np.int64)
        return np.where(u < 0, -(u & 0x7fffffff), u)

    def unkey(k):
        k = np.asarray(k, np.int64)
        return np.where(k < 0, (-k) | 0x80000000, k).astype(np.uint32).view(np.float32)

    def idx_of(vals):
        nb = -(-len(vals) // 255)
        a = np.zeros(nb * 256, np.float32)
        for b in range(nb):
            a[b * 256] = 1.0
            chunk = vals[b * 255:(b + 1) * 255]
            a[b * 256 + 1:b * 256 + 1 + len(chunk)] = chunk
        q, _ = torch.ops.bitsandbytes.quantize_blockwise(torch.from_numpy(a), code, 256)
        q = q.numpy()
        return np.concatenate([q[b * 256 + 1:b * 256 + 256] for b in range(nb)])[:len(vals)]

    c = code.numpy()
    lo = np.full(255, key(np.float32(-1.0)))  # maps to 0
    hi = np.full(255, key(np.float32(1.0)))   # maps to 255
    for _ in range(34):
        mid = (lo + hi) // 2
        up = idx_of(unkey(mid)) >= np.arange(1, 256)
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    thr = unkey(hi)
    r = idx_of(thr)
    below = idx_of(np.nextafter(thr, np.float32(-2)))
    assert (r >= np.arange(1, 256)).all() and (below <= np.arange(0, 255)).all()
    return thr, r, below


def linear_fixture(path, seed, qt, nested, dtype):
    torch.manual_seed(seed)
    lin = bnb.nn.Linear4bit(72, 40, bias=True, compress_statistics=nested, quant_type=qt,
                            compute_dtype=torch.float32)
    w = torch.from_numpy(gen(seed, (40, 72), 0.1))
    lin.weight = bnb.nn.Params4bit(w.to(dtype), requires_grad=False, compress_statistics=nested,
                                   quant_type=qt, blocksize=64)
    lin.bias.data = torch.arange(40, dtype=torch.float32) / 7
    lin = lin.to("cpu")
    sd = {k: v.contiguous() for k, v in lin.state_dict().items()}
    save_file(sd, path)
    ref = torch_dequant(lin.weight.data, lin.weight.quant_state)
    native = F.dequantize_4bit(lin.weight.data, lin.weight.quant_state).reshape(-1)
    deq = ref.numpy()
    return {"native_agrees": bool(torch.equal(ref.to(native.dtype).view(torch.uint8),
                                              native.view(torch.uint8))),"keys": {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in sd.items()},
            "quant_state": bytes(sd["weight.quant_state.bitsandbytes__" + qt].numpy()).decode(),
            "seed": seed, "dtype": str(dtype).replace("torch.", ""), "quant_type": qt,
            "nested": nested, "dequant_fnv": fnv1a64(deq.tobytes())}


def hf_llama_fixture(d, hidden=32, inter=48, keep_fp32=None):
    from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM
    torch.manual_seed(7)
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=32,
                      max_position_embeddings=64, tie_word_embeddings=True)
    m = LlamaForCausalLM(cfg)
    tmp = keep_fp32 or tempfile.mkdtemp()
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)
    m.save_pretrained(tmp)
    for extra in os.listdir(tmp):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(tmp, extra))
    qc = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                            bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32)
    q = LlamaForCausalLM.from_pretrained(tmp, quantization_config=qc, device_map="cpu",
                                         dtype=torch.float32, attn_implementation="eager")
    if os.path.isdir(d):
        shutil.rmtree(d)
    q.save_pretrained(d)
    for extra in os.listdir(d):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(d, extra))
    if not keep_fp32:
        shutil.rmtree(tmp)
    out = {}
    for name, mod in q.named_modules():
        if isinstance(mod, bnb.nn.Linear4bit):
            st = mod.weight.quant_state
            ref = torch_dequant(mod.weight.data, st)
            native = F.dequantize_4bit(mod.weight.data, st).float().reshape(-1)
            out[name + ".weight"] = {"shape": list(st.shape),
                                     "dequant_fnv": fnv1a64(ref.numpy().tobytes()),
                                     "native_agrees": bool(torch.equal(ref.view(torch.int32),
                                                                       native.view(torch.int32)))}
    if not keep_fp32:
        return out
    # The logits of bitsandbytes' general CPU path (dequantize_4bit, then the
    # matmul in the compute dtype), not its AVX512-BF16 repacking.
    assert all(v["native_agrees"] for v in out.values())
    for mod in q.modules():
        if isinstance(mod, bnb.nn.Linear4bit):
            mod.support_avx512bf16_for_cpu = False
    ids = [1, 5, 9, 13, 2, 30, 7, 7, 0, 21]
    with torch.no_grad():
        logits = q(torch.tensor([ids])).logits[0].float().numpy()
    return {"ids": ids, "logits": [float(v) for v in logits.reshape(-1)]}


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    dyn = F.create_dynamic_map()
    j = {
        "versions": {"bitsandbytes": bnb.__version__, "torch": torch.__version__,
                     "numpy": np.__version__,
                     "cpu_capability": torch.backends.cpu.get_cpu_capability()},
        "tables": {
            "nf4": hexf(F.get_4bit_type("nf4", device="cpu").numpy()),
            "fp4": hexf(F.get_4bit_type("fp4", device="cpu").numpy()),
            "dynamic": hexf(dyn.numpy()),
        },
        "cases": [run_case(c) for c in CASES],
    }
    # torch's float32 sum (the mean's numerator) on 1..4 threads, over
    # |gen(seed, (n,), 1)|: the order torch adds in, which the C side repeats.
    sums = []
    for n in (1, 3, 5, 7, 8, 15, 16, 100, 1000, 32767, 33000, 100003, 1000003):
        a = torch.from_numpy(np.abs(gen(1000 + n % 97, (n,), 1.0)))
        for t in (1, 2, 3, 4):
            torch.set_num_threads(t)
            sums.append({"n": n, "seed": 1000 + n % 97, "threads": t, "sum": bits(a.sum().item()),
                         "mean": bits(a.mean().item())})
    torch.set_num_threads(1)
    j["sums"] = sums
    thr, r, below = thresholds(dyn)
    j["tables"]["thresholds"] = hexf(thr)
    j["tables"]["threshold_codes"] = r.tobytes().hex()
    j["tables"]["below_codes"] = below.tobytes().hex()
    vals = [0.11628274619579315, 0.05, 1e-05, 1.5e-7, 0.0001, 123456.0, 1e16, 3e17,
            2.0 ** -130, 0.0, 1.0, 0.1, 7.0, 1e-4 * 3, 65504.0, 2.5e-5]
    rs = []
    for v in vals:
        v32 = float(np.float32(v))
        rs.append([bits(v32), repr(v32)])
    for c in j["cases"]:
        if "offset" in c:
            v32 = float(np.array([int(c["offset"], 16)], np.uint32).view(np.float32)[0])
            rs.append([c["offset"], repr(v32)])
    j["repr"] = rs
    lin = {
        "linear_nf4": linear_fixture(os.path.join(OUT, "linear_nf4.safetensors"), 101, "nf4", True,
                                     torch.float32),
        "linear_fp4_plain": linear_fixture(os.path.join(OUT, "linear_fp4_plain.safetensors"), 102,
                                           "fp4", False, torch.float32),
        "linear_nf4_bf16": linear_fixture(os.path.join(OUT, "linear_nf4_bf16.safetensors"), 103,
                                          "nf4", True, torch.bfloat16),
    }
    j["linear"] = lin
    j["hf_llama"] = hf_llama_fixture(os.path.join(OUT, "hf_llama"))
    j["hf_llama64_logits"] = hf_llama_fixture(os.path.join(OUT, "hf_llama64"), 64, 128,
                                              os.path.join(OUT, "hf_llama64_fp32"))
    with open(os.path.join(OUT, "nf4.json"), "w") as fh:
        json.dump(j, fh, separators=(",", ":"))
        fh.write("\n")
    print("wrote", OUT, "cases:", len(j["cases"]))


if __name__ == "__main__":
    main()
