#!/usr/bin/env python3
"""Checks ilm_tokenizer_train against sentencepiece's BPE trainer.

Run from the repository root after `make`, with the reference virtualenv:

    /work/ref-venv/bin/python tools/reference/train_reference.py [--vocab 8000]
    /work/ref-venv/bin/python tools/reference/train_reference.py --fixtures

The corpus is built from Debian's `fortunes` (English), `fortunes-zh`
(chinese, tang300, song100; ANSI colour codes removed) and Python's standard
library sources.  Every tenth fortune / source file is held out.

  (a) models written by our trainer must load in sentencepiece with the same
      pieces, scores, types and options;
  (b) sentencepiece trains a BPE model with the same options on the same
      text; we compare tokens per byte on the held-out text (goal: ours
      within 3 % of sentencepiece's);
  (c) --fixtures writes tests/fixtures/tokenizer/train/: a small training
      text, the config, the model our trainer wrote from it, held-out lines
      and sentencepiece's ids for them under that model.

Needs: sentencepiece and protobuf in the virtualenv, a C compiler, `make` done.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FORTUNES = "/usr/share/games/fortunes"
ZH = ("chinese", "tang300", "song100")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
WORK = "/tmp/ilm-train-reference"
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "train")


def fortunes(names):
    units = []
    for name in names:
        with open(os.path.join(FORTUNES, name), encoding="utf-8", errors="replace") as f:
            text = ANSI.sub("", f.read())
        units += [u.strip("\n") + "\n" for u in re.split(r"^%\n", text, flags=re.M) if u.strip()]
    return units


def english_names():
    out = []
    for p in sorted(glob.glob(os.path.join(FORTUNES, "*"))):
        n = os.path.basename(p)
        if n.endswith((".dat", ".u8")) or n in ZH or os.path.islink(p):
            continue
        out.append(n)
    return out


def code_units(limit_bytes):
    units, total = [], 0
    for p in sorted(glob.glob("/usr/lib/python3*/*.py")):
        with open(p, encoding="utf-8", errors="replace") as f:
            t = f.read()
        units.append(t)
        total += len(t.encode())
        if total >= limit_bytes:
            break
    return units


def split(units, every=10):
    train = [u for i, u in enumerate(units) if i % every != every - 1]
    held = [u for i, u in enumerate(units) if i % every == every - 1]
    return train, held


def build_driver():
    exe = os.path.join(ROOT, "build", "train_model")
    src = os.path.join(ROOT, "tools", "reference", "train_model.c")
    lib = os.path.join(ROOT, "lib")
    subprocess.check_call(["cc", "-O2", "-I" + os.path.join(ROOT, "include"), src,
                           "-L" + lib, "-linternlm", "-Wl,-rpath," + lib, "-o", exe])
    return exe


def train_ours(exe, config):
    out = subprocess.run([exe, json.dumps(config)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("our trainer failed: " + out.stderr)
    return float(out.stdout.strip())


def train_spm(text_path, prefix, vocab, user=()):
    t0 = time.time()
    spm.SentencePieceTrainer.train(
        input=text_path, model_prefix=prefix, model_type="bpe", vocab_size=vocab,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=False, byte_fallback=True, split_digits=True,
        character_coverage=0.9995, max_sentence_length=4192, num_threads=2,
        user_defined_symbols=list(user), minloglevel=2)
    return time.time() - t0


def check_loads(model_path, config):
    """(a): sentencepiece loads our file and sees what we wrote."""
    sp = spm.SentencePieceProcessor(model_file=model_path)
    m = pb.ModelProto()
    with open(model_path, "rb") as f:
        m.ParseFromString(f.read())
    assert sp.vocab_size() == config["vocab_size"] == len(m.pieces), "vocab size"
    assert m.trainer_spec.model_type == pb.TrainerSpec.BPE
    assert m.trainer_spec.byte_fallback and m.trainer_spec.split_digits
    assert m.normalizer_spec.name == "identity"
    assert not m.normalizer_spec.add_dummy_prefix
    assert not m.normalizer_spec.remove_extra_whitespaces
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    user = config.get("user_defined_symbols", [])
    for i, s in enumerate(user):
        assert sp.id_to_piece(3 + i) == s and sp.is_control(3 + i) is False
    base = 3 + len(user)
    for b in range(256):
        assert sp.id_to_piece(base + b) == "<0x%02X>" % b and sp.is_byte(base + b)
    scores = [p.score for p in m.pieces[base + 256:]]
    assert scores == [-float(i) for i in range(len(scores))], "scores decrease by one"
    return sp


def check_encoder(model_path, sp, text):
    """Our encoder (the CLI) gives sentencepiece's ids for our model."""
    cli = os.path.join(ROOT, "build", "internlm")
    if not os.path.exists(cli):
        print("  (no build/internlm: encoder comparison skipped)")
        return
    path = os.path.join(WORK, "heldout.txt")
    write(path, text)
    out = subprocess.run([cli, "tokenize", "--tokenizer", model_path, "--file", path],
                         capture_output=True, text=True, check=True).stdout.split()
    ours, ref = [int(x) for x in out], sp.encode(text)
    if ours != ref:
        i = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), min(len(ours), len(ref)))
        sys.exit("  encoder mismatch at token %d: ours %s, sentencepiece %s" %
                 (i, ours[i:i + 8], ref[i:i + 8]))
    print("  our encoder = sentencepiece on the held-out text: %d ids" % len(ref))


def tokens_per_byte(sp, lines):
    n_tok = sum(len(ids) for ids in sp.encode(lines))
    n_bytes = sum(len(l.encode()) for l in lines)
    return n_tok, n_bytes


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def compare(exe, vocab):
    os.makedirs(WORK, exist_ok=True)
    en, zh = fortunes(english_names()), fortunes(ZH)
    code = code_units(1_500_000)
    tr_en, he_en = split(en)
    tr_zh, he_zh = split(zh)
    tr_code, he_code = split(code)
    train_text = "".join(tr_en + tr_zh + tr_code)
    held_lines = [l for l in "".join(he_en + he_zh + he_code).split("\n") if l]
    train_path = os.path.join(WORK, "train.txt")
    write(train_path, train_text)
    print("training text: %d bytes (%d English fortunes, %d Chinese, %d source files); "
          "held out: %d lines, %d bytes" % (len(train_text.encode()), len(tr_en), len(tr_zh),
                                             len(tr_code), len(held_lines),
                                             sum(len(l.encode()) for l in held_lines)))
    ours = os.path.join(WORK, "ours-%d.model" % vocab)
    config = {"input": [train_path], "out": ours, "vocab_size": vocab}
    t_ours = train_ours(exe, config)
    sp_ours = check_loads(ours, config)
    t_ref = train_spm(train_path, os.path.join(WORK, "spm-%d" % vocab), vocab)
    sp_ref = spm.SentencePieceProcessor(model_file=os.path.join(WORK, "spm-%d.model" % vocab))
    print("vocab %d: train time ours %.2f s, sentencepiece %.2f s (2 threads)" %
          (vocab, t_ours, t_ref))
    check_encoder(ours, sp_ours, "\n".join(held_lines))
    worst = 0.0
    for name, lines in (("all", held_lines),
                        ("english", [l for l in "".join(he_en).split("\n") if l]),
                        ("chinese", [l for l in "".join(he_zh).split("\n") if l]),
                        ("code", [l for l in "".join(he_code).split("\n") if l])):
        a, n = tokens_per_byte(sp_ours, lines)
        b, _ = tokens_per_byte(sp_ref, lines)
        ratio = a / b
        if name == "all":
            worst = ratio
        print("  held-out %-8s %8d bytes: ours %.4f tokens/byte (%d), sentencepiece %.4f (%d), "
              "ratio %.4f" % (name, n, a / n, a, b / n, b, ratio))
    return worst


EDGE_LINES = [
    "  two leading spaces and  double  spaces ",
    "tab\tinside\tthe line",
    "emoji \U0001F600 and a rare ideograph \U00020000 fall back to bytes",
    "digits 1234567890, fullwidth \uff11\uff12\uff13 and 3.14159",
    "literal <s> and </s> and <unk> and <0x41> are text",
    "<|im_start|>user\nhello<|im_end|>",
    "\u2581already escaped\u2581spaces",
    "caf\u00e9 na\u00efve \u00fcber stra\u00dfe",
    "\u4e2d\u6587\u548cEnglish\u6df7\u5408\uff0c\u6807\u70b9\u3002",
    "",
    " ",
]


def fixtures(exe):
    """(c): a small model our trainer writes, and sentencepiece's ids for it."""
    os.makedirs(FIXTURES, exist_ok=True)
    en = fortunes(["computers", "linux", "science"])
    zh = fortunes(["tang300"])
    code = code_units(60_000)
    tr_en, he_en = split(en)
    tr_zh, he_zh = split(zh)
    tr_code, he_code = split(code)

    def cap(units, limit):
        out, n = [], 0
        for u in units:
            if n + len(u.encode()) > limit:
                break
            out.append(u)
            n += len(u.encode())
        return out

    train_text = "".join(cap(tr_en, 70_000) + cap(tr_zh, 20_000) + cap(tr_code, 30_000))
    write(os.path.join(FIXTURES, "train.txt"), train_text)
    config = {"input": ["train.txt"], "out": "model", "vocab_size": 2000,
              "user_defined_symbols": ["<|im_start|>", "<|im_end|>"]}
    model = os.path.join(FIXTURES, "tokenizer.model")
    run_config = dict(config, input=[os.path.join(FIXTURES, "train.txt")], out=model)
    train_ours(exe, run_config)
    with open(os.path.join(FIXTURES, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")
    sp = check_loads(model, run_config)
    held = "".join(cap(he_en, 12_000) + cap(he_zh, 4_000) + cap(he_code, 8_000))
    lines = held.split("\n") + EDGE_LINES
    # One held-out line per entry; newlines inside a line are written as \n
    # escapes so the file stays one line per entry (see test_tok_train.c).
    with open(os.path.join(FIXTURES, "heldout.jsonl"), "w", encoding="utf-8") as f:
        for l in lines:
            f.write(json.dumps({"text": l, "ids": sp.encode(l)}, ensure_ascii=False) + "\n")
    with open(model, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(FIXTURES, "*")))
    print("fixtures: %d held-out lines, model sha256 %s, %d bytes in %s" %
          (len(lines), digest[:16], total, os.path.relpath(FIXTURES, ROOT)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, nargs="*", default=[8000])
    ap.add_argument("--fixtures", action="store_true")
    args = ap.parse_args()
    exe = build_driver()
    if args.fixtures:
        fixtures(exe)
        return 0
    ok = True
    for v in args.vocab:
        ratio = compare(exe, v)
        ok = ok and ratio <= 1.03
    print("PASS" if ok else "FAIL: ours needs more than 3 % more tokens than sentencepiece")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
