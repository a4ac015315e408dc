#!/usr/bin/env python3
"""Reference fixture for lm-eval's wikitext task in the evaluator (the
"wikitext_detokenizer" transform in src/eval/postproc.c, the reader's
"document_start" split in src/eval/data.c, configs/eval/wikitext2.json; read
by tests/test_eval_text.c).

lm-eval's functions come from its installed source file
lm_eval/tasks/wikitext/preprocess_wikitext.py (the package installed with
--no-deps and never imported; the file needs only `re`):

    python3 -m venv .venv-ref
    .venv-ref/bin/pip install --no-deps lm-eval==0.4.13
    .venv-ref/bin/python tools/reference/eval_wikitext_fixtures.py [SHARED_DATA]

Writes tests/fixtures/eval/wikitext.json:

  {"detokenizer": [{"text": ..., "out": wikitext_detokenizer({"page": text})}],
   "articles": {"file": "wikitext2/wiki.test.txt", "count": 62,
                "docs": [{"line", "title", "bytes", "words", "out_bytes", "out_fnv"}],
                "words", "bytes"}}

The articles are wiki.test.txt cut as EleutherAI/wikitext_document_level
cuts the raw test file into pages: the text split at "\n"; a line that,
with "= = =" written "===" and "= =" written "==" and then stripped, starts
with "= " and ends with " =" begins a page (a " = Title = " line, not a
" = = Section = = " one); a page is its lines joined by "\n" and kept when
it is not only whitespace.  The shared file ends with a newline, which ends
its last line (no empty line follows it).  "words" and "bytes" are lm-eval's
process_results counts of the page; "out_*" describe
wikitext_detokenizer({"page": page}): its UTF-8 length and FNV-1a 64 of its
bytes.  "line" is the 1-based line of the page's title, "title" that line.
"""
import importlib.metadata
import importlib.util
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "eval", "wikitext.json")


def lm_eval_wikitext():
    spec = importlib.util.find_spec("lm_eval")  # locates; does not import
    path = os.path.join(os.path.dirname(spec.origin), "tasks", "wikitext", "preprocess_wikitext.py")
    mod_spec = importlib.util.spec_from_file_location("preprocess_wikitext", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def is_title(line):
    r = line.replace("= = =", "===").replace("= =", "==").strip()
    return r.startswith("= ") and r.endswith(" =")


def articles(text):
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file's last newline ends a line
    pages, cur, first = [], [], 1
    for i, line in enumerate(lines, 1):
        if is_title(line) and cur:
            if "\n".join(cur).strip():
                pages.append((first, cur))
            cur = []
        if not cur:
            first = i
        cur.append(line)
    if cur and "\n".join(cur).strip():
        pages.append((first, cur))
    return [(first, "\n".join(c)) for first, c in pages]


# Each step of the detokenizer, and the corners of its regular expressions:
# pairs across lines, an opening with no closing, Unicode whitespace inside a
# pair, quotes that pair up across a sentence, the degree sign, "/' 5/".
HAND = [
    " = Robert Boulter = \n Robert Boulter is an English film , television and theatre actor . ",
    "Ise @-@ class battleships were 1 @,@ 234 ft long , about 3 @.@ 5 m ; fast !",
    "He said : \" I am here \" . Is it ? Yes .",
    "the players ' union ; the Smiths ' house",
    "a ( b c ) d [ e ] f { g } h",
    "( open\n across lines )",
    "( unclosed and ) ( again",
    "\u00a0( \u3000inner\u2003 ) and [\u00a0]",
    "' a ' b ' c ' d '",
    "\" one \" two \" three",
    " = = Section = = \n = = = Sub = = = \n = = = = Deep = = = = ",
    "15 \u00b0 C and 20 \u00b0 F",
    " N of N  's , the team 's",
    "/' 5/ and /' x/",
    "line \n next\n  two spaces",
    "",
]


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "ILM_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
    pw = lm_eval_wikitext()
    out = {"lm_eval": importlib.metadata.version("lm-eval"),
           "detokenizer": [{"text": t, "out": pw.wikitext_detokenizer({"page": t})} for t in HAND]}
    rel = "wikitext2/wiki.test.txt"
    with open(os.path.join(shared, rel), encoding="utf-8", newline="") as f:
        text = f.read()
    docs, words, nbytes = [], 0, 0
    for first, page in articles(text):
        r = pw.process_results({"page": page}, [-1.0])
        detok = pw.wikitext_detokenizer({"page": page}).encode("utf-8")
        w, b = r["word_perplexity"][1], r["byte_perplexity"][1]
        docs.append({"line": first, "title": page.split("\n")[0], "bytes": b, "words": w,
                     "out_bytes": len(detok), "out_fnv": fnv1a64(detok)})
        words += w
        nbytes += b
    out["articles"] = {"file": rel, "count": len(docs), "docs": docs, "words": words,
                       "bytes": nbytes}
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("{\n")
        f.write(' "lm_eval": %s,\n' % json.dumps(out["lm_eval"]))
        f.write(' "detokenizer": [\n')
        f.write(",\n".join("  " + json.dumps(d, ensure_ascii=False) for d in out["detokenizer"]))
        f.write("\n ],\n")
        a = out["articles"]
        f.write(' "articles": {"file": %s, "count": %d, "words": %d, "bytes": %d, "docs": [\n'
                % (json.dumps(a["file"]), a["count"], a["words"], a["bytes"]))
        f.write(",\n".join("  " + json.dumps(d, ensure_ascii=False) for d in a["docs"]))
        f.write("\n ]}\n}\n")
    print("wrote %s: %d hand cases, %d articles, %d words, %d bytes"
          % (OUT, len(HAND), a["count"], a["words"], a["bytes"]))


if __name__ == "__main__":
    main()
