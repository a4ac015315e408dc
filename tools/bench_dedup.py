#!/usr/bin/env python3
"""MinHash dedup speed against datasketch, in one run on one machine.

Builds a corpus file from Debian fortunes (documents separated by "%" lines,
repeated to --mb megabytes), then times on the same documents with the same
num_perm and the same shingling (word 5-grams of bytes.lower().split(), the
whole text as one shingle when it has fewer words; rules in
src/corpus/dedup.c):

  ours        build/bench_dedup (ilm__dedup_sign_batch; and the full stream
              check: exact hash, signatures, LSH index, candidate checks)
  datasketch  MinHash(num_perm).update_batch(shingles) per document

and prints MB/s and the ratio ours / datasketch for signing (the work both
do).  Needs datasketch in a venv (e.g. /work/ref-venv) and `make
build/bench_dedup`:

  /work/ref-venv/bin/python tools/bench_dedup.py [--mb 4] [--num-perm 128]
      [--threads 1] [--json]
"""
import argparse, json, os, subprocess, sys, tempfile, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.join(ROOT, "build", "bench_dedup")
FORTUNES = "/usr/share/games/fortunes"
FILES = ["fortunes", "literature", "wisdom", "science", "people", "computers", "humorists"]
NGRAM = 5


def corpus(mb):
    parts = []
    for f in FILES:
        p = os.path.join(FORTUNES, f)
        if os.path.exists(p):
            parts.append(open(p, "rb").read().rstrip(b"\n%"))
    one = b"\n%\n".join(parts)
    data = one
    while len(data) < mb * 1e6:
        data += b"\n%\n" + one
    return data


def shingles(doc):
    w = doc.lower().split()
    if not w:
        return []
    if len(w) < NGRAM:
        return [b" ".join(w)]
    return [b" ".join(w[i:i + NGRAM]) for i in range(len(w) - NGRAM + 1)]


def datasketch_time(docs, num_perm, reps):
    from datasketch import MinHash
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for d in docs:
            m = MinHash(num_perm=num_perm)
            m.update_batch(shingles(d))
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=4)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("bench_dedup: build it first: make build/bench_dedup")
    data = corpus(a.mb)
    docs = data.split(b"\n%\n")
    with tempfile.NamedTemporaryFile(suffix=".txt") as f:
        f.write(data)
        f.flush()
        out = subprocess.run([BIN, f.name, str(a.num_perm), str(a.threads), str(a.reps)],
                             check=True, capture_output=True, text=True).stdout
    ours = json.loads(out)
    if ours["documents"] != len(docs):
        sys.exit("bench_dedup: document counts differ (%d vs %d)" % (ours["documents"], len(docs)))
    n_sh = sum(len(shingles(d)) for d in docs)
    if n_sh != ours["shingles"]:
        sys.exit("bench_dedup: shingle counts differ (ours %d, python %d)" % (ours["shingles"], n_sh))
    ds = datasketch_time(docs, a.num_perm, a.reps)
    mb = len(data) / 1e6
    res = {
        "bytes": len(data), "documents": len(docs), "shingles": n_sh, "num_perm": a.num_perm,
        "threads": a.threads,
        "ours_sign_mb_s": ours["sign_mb_s"], "ours_dedup_mb_s": ours["dedup_mb_s"],
        "datasketch_mb_s": mb / ds,
        "ratio_sign": ours["sign_mb_s"] / (mb / ds),
        "ratio_dedup": ours["dedup_mb_s"] / (mb / ds),
    }
    if a.json:
        print(json.dumps(res))
        return
    print("%.1f MB, %d documents, %d shingles (word %d-grams), num_perm %d, %d thread(s)"
          % (mb, len(docs), n_sh, NGRAM, a.num_perm, a.threads))
    print("  libinternlm signatures     %8.2f MB/s" % res["ours_sign_mb_s"])
    print("  libinternlm full dedup     %8.2f MB/s" % res["ours_dedup_mb_s"])
    print("  datasketch MinHash         %8.2f MB/s (1 thread)" % res["datasketch_mb_s"])
    print("  ratio ours/datasketch      %8.1fx signatures, %.1fx full dedup"
          % (res["ratio_sign"], res["ratio_dedup"]))


if __name__ == "__main__":
    main()
