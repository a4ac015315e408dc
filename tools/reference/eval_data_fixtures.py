#!/usr/bin/env python3
"""Reference fixture for src/eval/data.c: the real evaluation sets in the
shared data folder as Python's own csv and json modules read them.  Nothing
expected here comes from libinternlm.  Standard library only:

    python3 tools/reference/eval_data_fixtures.py [SHARED_DATA]

SHARED_DATA defaults to $ILM_SHARED_DATA, else ../shared/data relative to
the repository root.  Writes tests/fixtures/eval/data_real.json:

  {"files": [{"path": "mmlu/dev/anatomy_dev.csv", "header": false,
              "rows": 5, "cols": 6, "columns": [...] (header files only),
              "fnv": "<16 hex digits>", "first": "...", "last": "..."}, ...]}

CSV files are read as csv.reader reads them with the default dialect, from a
file opened with newline="" and encoding "utf-8-sig" (the BOM, if any, is
not part of the first cell); empty rows (csv.reader's [] for a blank line)
are skipped, as csv.DictReader skips them.  JSONL files are read a line at a
time with json.loads, blank lines skipped; a row's cells are its values in
the key order of the first row.  "fnv" is FNV-1a 64 over every data row:
each cell's UTF-8 bytes followed by 0x1f, and 0x1e after each row.  "first"
is the first cell of the first row and "last" the last cell of the last
row, each cut to its first 60 characters (the test compares them as
prefixes).
"""
import csv
import glob
import gzip
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "eval", "data_real.json")

# (glob under the shared folder, has a header row)
CSV_SETS = [
    ("mmlu/dev/*.csv", False),
    ("cmmlu/dev/*.csv", True),
    ("ceval/dev/*.csv", True),
]
JSONL_SETS = ["gsm8k/test.jsonl", "humaneval/HumanEval.jsonl.gz"]


def fnv1a(rows):
    h = 0xCBF29CE484222325
    for row in rows:
        for cell in row:
            for b in cell.encode("utf-8") + b"\x1f":
                h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ 0x1E) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def cell_text(v):
    # The real sets hold only strings; the other scalars are spelt as
    # data.c spells them, and anything else is refused rather than guessed.
    if isinstance(v, str):
        return v
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    raise SystemExit("unexpected JSON value %r" % (v,))


def entry(rel, header, columns, rows):
    e = {"path": rel, "header": header, "rows": len(rows),
         "cols": len(columns) if columns else len(rows[0]),
         "fnv": fnv1a(rows), "first": rows[0][0][:60], "last": rows[-1][-1][:60]}
    if columns is not None:
        e["columns"] = columns
    return e


def read_csv(path, header):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r != []]
    columns = rows.pop(0) if header else None
    width = len(columns) if header else len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise SystemExit("%s: row %d has %d fields, not %d" % (path, i, len(r), width))
    return columns, rows


def read_jsonl(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        objs = [json.loads(line) for line in f.read().split("\n") if line.strip()]
    columns = list(objs[0].keys())
    return columns, [[cell_text(o[k]) for k in columns] for o in objs]


def main():
    shared = (sys.argv[1] if len(sys.argv) > 1 else
              os.environ.get("ILM_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data"))
    files = []
    for pattern, header in CSV_SETS:
        paths = sorted(glob.glob(os.path.join(shared, pattern)))
        if not paths:
            raise SystemExit("no files match %s under %s" % (pattern, shared))
        for p in paths:
            columns, rows = read_csv(p, header)
            files.append(entry(os.path.relpath(p, shared), header, columns, rows))
    for rel in JSONL_SETS:
        columns, rows = read_jsonl(os.path.join(shared, rel))
        files.append(entry(rel, None, columns, rows))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"files": files}, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote %s: %d files" % (OUT, len(files)))


if __name__ == "__main__":
    main()
